from inferstack_infra.cli import main

main()

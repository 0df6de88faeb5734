"""Benchmarks: each runs its baseline beside it in the same run and prints a ratio (`make bench`)."""

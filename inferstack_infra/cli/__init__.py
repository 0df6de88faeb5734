"""The `inferstack` command: one module per command group, each with a `register(subparsers)`.

    inferstack init [DIR] [--name NAME] [--force]
    inferstack synth|deploy|destroy|bootstrap [--manifest FILE] [--region R] [--profile P] [-- CDK ARGS]
    inferstack dev [--manifest FILE] [--port PORT] [--api-key KEY[:PLAN] ...] [--allow-loopback-webhooks]
    inferstack webhooks listen --port P --secret whsec_...
    inferstack invoke MODEL --input FILE|- [--url URL] [--api-key KEY]
    inferstack jobs submit|get|wait ...
    inferstack load [--concurrency N | --rate R] [--duration S] [--jobs FRACTION] [--out load.png]
    inferstack doctor [--manifest FILE]
    inferstack cost|advise [--manifest FILE] [--rps [MODEL=]N ...] [--hours ...] [--json] ...
    inferstack rollout status [--url URL | --aws [--manifest FILE] [--region R]] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inferstack_infra.cli import batch, calls, cdk, cost, dev, doctor, load, project, rollout
from inferstack_infra.cli.extras import missing_extra

#: Command groups, in the order `inferstack --help` lists them. A new group is a module with `register`.
GROUPS = (project, dev, calls, batch, load, doctor, cost, cdk, rollout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferstack", description="Serve ONNX models on AWS serverless.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "manifest", None) and not Path(args.manifest).exists():
        print(f"error: manifest {args.manifest} not found (pass --manifest FILE, or start a project here with "
              "`inferstack init`)", file=sys.stderr)
        raise SystemExit(2)
    try:
        code = args.func(args)
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc.name)
        if extra is None:
            raise
        print(f"error: `inferstack {args.command}` needs {exc.name}, from inferstack's [{extra}] extra: "
              f"pip install \"inferstack[{extra}]\"", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(code)

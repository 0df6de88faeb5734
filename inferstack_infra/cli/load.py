"""`inferstack load`: load on a running stack, local or deployed, with percentiles, errors and a plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inferstack_infra.cli.common import add_remote, client, fail, print_json
from inferstack_infra.client import ClientError, read_input


def cmd_load(args: argparse.Namespace) -> int:
    import asyncio

    from inferstack_infra.load import LoadRun, example_inputs, plot

    api = client(args)
    try:
        if args.input:
            inputs = read_input(args.input)
        else:
            inputs = example_inputs(api.call("GET", f"/v1/models/{args.model}")[1], rows=args.rows)
    except ClientError as exc:
        fail(str(exc))
    if args.jobs_only:
        return _soak(args, api.base, api.http.headers["x-api-key"], inputs)
    mode = f"{args.rate:g} req/s" if args.rate else f"{args.concurrency} clients"
    print(f"load: {api.base}, model {args.model}, {mode}, {args.duration:g} s, "
          f"{args.jobs:.0%} jobs", file=sys.stderr)
    run = LoadRun(api.base, api.http.headers["x-api-key"], args.model, inputs, jobs_fraction=args.jobs)
    result = asyncio.run(run.run(args.duration, concurrency=None if args.rate else args.concurrency,
                                 rate=args.rate, progress=not args.quiet))
    summary = result.summary()
    print_json(summary)
    png = plot(result, Path(args.out), f"inferstack load: {args.model}, {mode}, {summary['throughput_per_s']} "
               f"req/s, p99 {summary['p99_ms']} ms")
    print(f"plot: {png}", file=sys.stderr)
    return 0 if summary["ok"] else 1


def _soak(args: argparse.Namespace, url: str, api_key: str, inputs: Any) -> int:
    """`--jobs-only`: submit jobs (a count, or for a duration), then wait for every one to end."""
    import asyncio

    from inferstack_infra.soak import JobsSoak, plot

    if args.rate:
        fail("--jobs-only runs closed loop: give --concurrency, not --rate", 2)
    if args.count is not None and args.count < 1:
        fail(f"--count {args.count}: give a number of jobs above 0", 2)
    what = f"{args.count} jobs" if args.count else f"{args.duration:g} s of jobs"
    print(f"load: {url}, model {args.model}, {what} from {args.concurrency} clients, then the drain",
          file=sys.stderr)
    soak = JobsSoak(url, api_key, args.model, inputs)
    result = asyncio.run(soak.run(count=args.count, duration_s=None if args.count else args.duration,
                                  concurrency=args.concurrency, drain_timeout_s=args.drain_timeout,
                                  progress=not args.quiet))
    summary = result.summary()
    print_json(summary)
    png = plot(result, Path(args.out), f"inferstack load --jobs-only: {args.model}, {summary['accepted']} jobs, "
               f"{args.concurrency} clients, {summary['jobs_per_s']} jobs/s")
    print(f"plot: {png}", file=sys.stderr)
    return 0 if summary["ok"] else 1


def register(sub: Any) -> None:
    load = sub.add_parser("load", help="generate load on a running stack and report latency and errors")
    load.add_argument("--model", default="iris")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", type=int, default=8, help="closed loop: clients sending back to back")
    mode.add_argument("--rate", type=float, help="open loop: requests per second, whatever the answers")
    load.add_argument("--duration", type=float, default=10, help="seconds (default 10)")
    load.add_argument("--jobs", type=float, default=0.0, help="fraction of requests that submit jobs (0..1)")
    load.add_argument("--jobs-only", action="store_true",
                      help="soak the jobs tier: submit jobs (--count, or for --duration), then wait for all to end")
    load.add_argument("--count", type=int, help="with --jobs-only: how many jobs to submit (instead of --duration)")
    load.add_argument("--drain-timeout", type=float, default=300,
                      help="with --jobs-only: how long to wait for the jobs to end after the last submission")
    load.add_argument("--input", metavar="FILE|-", help="inputs to send (default: made from the model's signature)")
    load.add_argument("--rows", type=int, default=1, help="rows per request for the made-up inputs")
    load.add_argument("--out", default="load.png", help="where to write the plot (default load.png)")
    load.add_argument("--quiet", action="store_true", help="no progress line")
    add_remote(load)
    load.set_defaults(func=cmd_load)

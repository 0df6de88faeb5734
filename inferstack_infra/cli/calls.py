"""`inferstack invoke` and `inferstack jobs submit|get|wait`: calls to a running stack, local or deployed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inferstack_infra.cli.common import add_remote, client, fail, print_json
from inferstack_infra.client import ClientError, read_input


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        print_json(client(args).predict(args.model, read_input(args.input)))
    except ClientError as exc:
        fail(str(exc))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    api = client(args)
    try:
        if args.jobs_command == "submit":
            metadata = json.loads(args.metadata) if args.metadata else None
            print_json(api.submit(args.model, read_input(args.input), webhook=args.webhook, metadata=metadata,
                                  idempotency_key=args.idempotency_key))
        elif args.jobs_command == "get":
            print_json(api.job(args.job_id))
        else:
            job = api.wait(args.job_id, args.timeout)
            print_json(job)
            return 0 if job["status"] == "succeeded" else 1
    except json.JSONDecodeError as exc:
        fail(f"--metadata is not JSON: {exc}")
    except ClientError as exc:
        fail(str(exc))
    return 0


def register(sub: Any) -> None:
    invoke = sub.add_parser("invoke", help="predict with a model")
    invoke.add_argument("model")
    invoke.add_argument("--input", required=True, metavar="FILE|-",
                        help='JSON: {"inputs": ...} or just the inputs; - reads standard input')
    add_remote(invoke)
    invoke.set_defaults(func=cmd_invoke)

    jobs = sub.add_parser("jobs", help="submit and follow asynchronous jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    submit = jobs_sub.add_parser("submit", help="submit a job; prints its ID at once")
    submit.add_argument("model")
    submit.add_argument("--input", required=True, metavar="FILE|-")
    submit.add_argument("--webhook", help="https URL to notify when the job ends")
    submit.add_argument("--metadata", help="a JSON object returned with the job")
    submit.add_argument("--idempotency-key")
    get = jobs_sub.add_parser("get", help="a job's state, result or error")
    get.add_argument("job_id")
    wait = jobs_sub.add_parser("wait", help="wait for a job to end; exits 1 if it failed")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, default=120, help="seconds (default 120)")
    for p in (submit, get, wait):
        add_remote(p)
        p.set_defaults(func=cmd_jobs)

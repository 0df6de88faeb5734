"""`inferstack dev` (the whole deployment on this machine) and `inferstack webhooks listen`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from inferstack.inference.exceptions import ModelLoadError
from inferstack.manifest import Manifest
from inferstack_infra.cli.common import DEFAULT_API_KEY, DevState, fail, manifest


def parse_api_keys(values: list[str] | None, manifest: Manifest) -> dict[str, str]:
    """`KEY[:PLAN]` pairs; a key without a plan binds to the manifest's first plan."""
    plans = [p.name for p in manifest.api.plans]
    out: dict[str, str] = {}
    for value in values or [DEFAULT_API_KEY]:
        key, _, plan = value.partition(":")
        if len(key) < 8:
            fail(f"--api-key {value!r}: a key needs at least 8 characters", 2)
        if plan and plan not in plans:
            fail(f"--api-key {value!r} binds to unknown usage plan(s) {plan}; the manifest's plans are "
                 f"{', '.join(plans)}", 2)
        out[key] = plan or plans[0]
    return out


def cmd_dev(args: argparse.Namespace) -> int:
    from inferstack_infra.local.functions import FunctionStartError
    from inferstack_infra.local.rollout import CandidateError, parse_candidate
    from inferstack_infra.local.stack import DevStack, PortBusyError

    loaded = manifest(args.manifest)
    keys = parse_api_keys(args.api_key, loaded)
    if args.scale_in_after <= 0:
        fail(f"--scale-in-after {args.scale_in_after:g}: give a number of seconds above 0", 2)
    if args.time_scale <= 0:
        fail(f"--time-scale {args.time_scale:g}: give a factor above 0 (60: a manifest minute lasts a second)", 2)
    try:
        candidates = [parse_candidate(c) for c in args.candidate or []]
    except CandidateError as exc:
        fail(str(exc), 2)
    stack = DevStack(loaded, api_keys=keys, host=args.host, port=args.port,
                     allow_loopback_webhooks=args.allow_loopback_webhooks, scale_in_after_s=args.scale_in_after,
                     candidates=candidates, time_scale=args.time_scale)
    key = next(iter(keys))
    state = DevState(Path(args.manifest).resolve().parent)

    def banner() -> None:
        from inferstack_infra.load import example_inputs

        assert stack.catalog is not None
        state.write(stack.url, key)
        tries = "\n".join(
            f"  try:       curl -s -H 'x-api-key: {key}' {stack.url}/v1/models/{m.name}/predict \\\n"
            f"               -d '{json.dumps({'inputs': example_inputs(m.public().model_dump(mode='json'))})}'"
            for m in stack.catalog.models)
        rollouts = "".join(
            f"  rollout:   {name} {r.rollout.strategy} to {r.stats['candidate'].version} ({r.time_scale:g}x time): "
            "`inferstack rollout status`\n" for name, r in stack.rollouts.items())
        print(f"""
inferstack dev: {loaded.name} is up at {stack.url}/v1  (Ctrl-C stops everything)
  API keys:  {', '.join(f'{k} (plan {p})' for k, p in keys.items())}
  docs:      {stack.url}/v1/docs
  dashboard: {stack.dashboard_url}  (live: requests, latency, errors, queues, batches)
  models:    {', '.join(f'{m.name} ({m.tier})' for m in loaded.models)}
  webhooks:  signed with {stack.aws.signing_secret}
             loopback receivers {'allowed (--allow-loopback-webhooks)' if args.allow_loopback_webhooks else
                                 'refused (pass --allow-loopback-webhooks to allow)'}
  clients:   `inferstack invoke|jobs|load` run in {state.path.parent.parent} find this stack by themselves
{rollouts}{tries}
""", flush=True)

    try:
        stack.serve(on_ready=banner)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down; every part is stopped by now
        print("inferstack dev: stopped", file=sys.stderr)
        state.clear()
        # Every part is stopped: exit now. The interpreter's own teardown (joining idle executor threads,
        # collecting moto's, boto3's and FastAPI's modules) took seconds more, under load tens of seconds.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except PortBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ModelLoadError, FunctionStartError, CandidateError) as exc:
        fail(str(exc), 2)
    finally:
        state.clear()
    return 0


def cmd_webhooks_listen(args: argparse.Namespace) -> int:
    from inferstack_infra.local.webhook_receiver import WebhookReceiver, print_delivery

    receiver = WebhookReceiver(args.secret, host=args.host, port=args.port, on_delivery=print_delivery)
    print(f"listening on {receiver.url} (any path); verifying with the given secret. Ctrl-C stops.", flush=True)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


def register(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run the whole deployment locally")
    dev.add_argument("--manifest", default="inferstack.toml")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--api-key", action="append", metavar="KEY[:PLAN]",
                     help="an accepted API key, bound to a usage plan (default: the first plan); repeatable")
    dev.add_argument("--allow-loopback-webhooks", action="store_true",
                     help="let webhooks reach http://127.0.0.1 receivers (never possible when deployed)")
    dev.add_argument("--scale-in-after", type=float, default=900, metavar="SECONDS",
                     help="a heavy model with instances.min = 0 stops its container after this long without a "
                     "call (default 900: AWS scales in after about 15 idle minutes)")
    dev.add_argument("--candidate", action="append", metavar="MODEL=FILE.onnx[,handler=FILE.py]",
                     help="rehearse a rollout: serve this file as the model's new version next to the current one, "
                     "shift traffic on the manifest's rollout schedule, roll back on its alarms; repeatable")
    dev.add_argument("--time-scale", type=float, default=1.0, metavar="FACTOR",
                     help="run rollout schedules FACTOR times faster (60: a 5-minute canary takes 5 s)")
    dev.set_defaults(func=cmd_dev)

    webhooks = sub.add_parser("webhooks", help="webhook tools")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listen = webhooks_sub.add_parser("listen", help="receive, verify and print webhook deliveries")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9000)
    listen.add_argument("--secret", required=True, help="the whsec_ signing secret `inferstack dev` printed")
    listen.set_defaults(func=cmd_webhooks_listen)

"""The `inferstack` command.

    inferstack dev [--manifest FILE] [--port PORT] [--api-key KEY[:PLAN] ...] [--allow-loopback-webhooks]
    inferstack invoke MODEL --input FILE|- [--url URL] [--api-key KEY]
    inferstack jobs submit|get|wait ...
    inferstack webhooks listen --port P --secret whsec_...
    inferstack load [--concurrency N | --rate R] [--duration S] [--jobs FRACTION] [--out load.png]
    inferstack doctor [--manifest FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from inferstack.inference.exceptions import ModelLoadError
from inferstack.manifest import Manifest, ManifestError, load_manifest
from inferstack_infra.client import DEFAULT_URL, ApiClient, ClientError, fail, read_input


def _manifest(path: str) -> Manifest:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        fail(str(exc), 2)


def parse_api_keys(values: list[str] | None, manifest: Manifest) -> dict[str, str]:
    """`KEY[:PLAN]` pairs; a key without a plan binds to the manifest's first plan."""
    from inferstack_infra.local.stack import DEFAULT_API_KEY

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
    from inferstack_infra.local.stack import DevStack, PortBusyError

    manifest = _manifest(args.manifest)
    keys = parse_api_keys(args.api_key, manifest)
    stack = DevStack(manifest, api_keys=keys, host=args.host, port=args.port,
                     allow_loopback_webhooks=args.allow_loopback_webhooks)
    key = next(iter(keys))

    def banner() -> None:
        from inferstack_infra.load import example_inputs

        assert stack.catalog is not None
        tries = "\n".join(
            f"  try:       curl -s -H 'x-api-key: {key}' {stack.url}/v1/models/{m.name}/predict \\\n"
            f"               -d '{json.dumps({'inputs': example_inputs(m.public().model_dump(mode='json'))})}'"
            for m in stack.catalog.models)
        print(f"""
inferstack dev: {manifest.name} is up at {stack.url}/v1  (Ctrl-C stops everything)
  API keys:  {', '.join(f'{k} (plan {p})' for k, p in keys.items())}
  docs:      {stack.url}/v1/docs
  models:    {', '.join(f'{m.name} ({m.tier})' for m in manifest.models)}
  webhooks:  signed with {stack.aws.signing_secret}
             loopback receivers {'allowed (--allow-loopback-webhooks)' if args.allow_loopback_webhooks else
                                 'refused (pass --allow-loopback-webhooks to allow)'}
{tries}
""", flush=True)

    try:
        stack.serve(on_ready=banner)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down; every part is stopped by now
        print("inferstack dev: stopped", file=sys.stderr)
    except PortBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ModelLoadError, FunctionStartError) as exc:
        fail(str(exc), 2)
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


def _client(args: argparse.Namespace) -> ApiClient:
    from inferstack_infra.local.stack import DEFAULT_API_KEY

    return ApiClient(args.url or os.environ.get("INFERSTACK_URL") or DEFAULT_URL,
                     args.api_key or os.environ.get("INFERSTACK_API_KEY") or DEFAULT_API_KEY)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        _print(_client(args).predict(args.model, read_input(args.input)))
    except ClientError as exc:
        fail(str(exc))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        if args.jobs_command == "submit":
            metadata = json.loads(args.metadata) if args.metadata else None
            _print(client.submit(args.model, read_input(args.input), webhook=args.webhook, metadata=metadata,
                                 idempotency_key=args.idempotency_key))
        elif args.jobs_command == "get":
            _print(client.job(args.job_id))
        else:
            job = client.wait(args.job_id, args.timeout)
            _print(job)
            return 0 if job["status"] == "succeeded" else 1
    except json.JSONDecodeError as exc:
        fail(f"--metadata is not JSON: {exc}")
    except ClientError as exc:
        fail(str(exc))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    import asyncio

    from inferstack_infra.load import LoadRun, example_inputs, plot

    client = _client(args)
    try:
        if args.input:
            inputs = read_input(args.input)
        else:
            inputs = example_inputs(client.call("GET", f"/v1/models/{args.model}")[1], rows=args.rows)
    except ClientError as exc:
        fail(str(exc))
    mode = f"{args.rate:g} req/s" if args.rate else f"{args.concurrency} clients"
    print(f"load: {client.base}, model {args.model}, {mode}, {args.duration:g} s, "
          f"{args.jobs:.0%} jobs", file=sys.stderr)
    run = LoadRun(client.base, client.http.headers["x-api-key"], args.model, inputs, jobs_fraction=args.jobs)
    result = asyncio.run(run.run(args.duration, concurrency=None if args.rate else args.concurrency,
                                 rate=args.rate, progress=not args.quiet))
    summary = result.summary()
    _print(summary)
    png = plot(result, Path(args.out), f"inferstack load: {args.model}, {mode}, {summary['throughput_per_s']} "
               f"req/s, p99 {summary['p99_ms']} ms")
    print(f"plot: {png}", file=sys.stderr)
    return 0 if summary["ok"] else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from inferstack.topology import FunctionSpec, functions, predict_function_key
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import LAMBDA_MAX_UNZIPPED_BYTES, as_light, function_size

    manifest = _manifest(args.manifest)
    try:
        catalog = build_catalog(manifest)
    except ModelLoadError as exc:
        fail(str(exc), 2)
    print(f"manifest {args.manifest}: ok ({len(manifest.models)} model(s), {len(manifest.api.plans)} usage plan(s))")
    mb = 1024 * 1024

    def report(spec: FunctionSpec, within: Manifest) -> int:
        code, layers = function_size(spec, within, catalog)
        total = code + layers
        flag = "ok" if total <= LAMBDA_MAX_UNZIPPED_BYTES else "TOO LARGE"
        print(f"{spec.key:<24}{code / mb:>8.1f}MB{layers / mb:>8.1f}MB{total / mb:>8.1f}MB   {flag}, "
              f"{(LAMBDA_MAX_UNZIPPED_BYTES - total) / mb:.0f} MB to spare")
        return total

    print(f"\n{'function':<24}{'code':>10}{'layers':>10}{'total':>10}   Lambda limit 250 MB (unzipped)")
    worst = max(report(spec, manifest) for spec in functions(manifest))
    if manifest.heavy_models:
        # What each heavy model's predict function would be with tier = "light": does it fit Lambda at all?
        light = as_light(manifest)
        print('\nheavy models, were they deployed with tier = "light":')
        for m in manifest.heavy_models:
            (spec,) = [f for f in functions(light) if f.key == predict_function_key(m.name)]
            report(spec, light)
    return 0 if worst <= LAMBDA_MAX_UNZIPPED_BYTES else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferstack", description="Serve ONNX models on AWS serverless.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole deployment locally")
    dev.add_argument("--manifest", default="inferstack.toml")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--api-key", action="append", metavar="KEY[:PLAN]",
                     help="an accepted API key, bound to a usage plan (default: the first plan); repeatable")
    dev.set_defaults(func=cmd_dev)

    dev.add_argument("--allow-loopback-webhooks", action="store_true",
                     help="let webhooks reach http://127.0.0.1 receivers (never possible when deployed)")

    webhooks = sub.add_parser("webhooks", help="webhook tools")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listen = webhooks_sub.add_parser("listen", help="receive, verify and print webhook deliveries")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9000)
    listen.add_argument("--secret", required=True, help="the whsec_ signing secret `inferstack dev` printed")
    listen.set_defaults(func=cmd_webhooks_listen)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help=f"the API's base URL (default $INFERSTACK_URL or {DEFAULT_URL}); for a "
                       "deployed stack the stage URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
        p.add_argument("--api-key", help="the x-api-key (default $INFERSTACK_API_KEY or the dev default)")

    invoke = sub.add_parser("invoke", help="predict with a model")
    invoke.add_argument("model")
    invoke.add_argument("--input", required=True, metavar="FILE|-",
                        help='JSON: {"inputs": ...} or just the inputs; - reads standard input')
    remote(invoke)
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
        remote(p)
        p.set_defaults(func=cmd_jobs)

    load = sub.add_parser("load", help="generate load on a running stack and report latency and errors")
    load.add_argument("--model", default="iris")
    mode = load.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", type=int, default=8, help="closed loop: clients sending back to back")
    mode.add_argument("--rate", type=float, help="open loop: requests per second, whatever the answers")
    load.add_argument("--duration", type=float, default=10, help="seconds (default 10)")
    load.add_argument("--jobs", type=float, default=0.0, help="fraction of requests that submit jobs (0..1)")
    load.add_argument("--input", metavar="FILE|-", help="inputs to send (default: made from the model's signature)")
    load.add_argument("--rows", type=int, default=1, help="rows per request for the made-up inputs")
    load.add_argument("--out", default="load.png", help="where to write the plot (default load.png)")
    load.add_argument("--quiet", action="store_true", help="no progress line")
    remote(load)
    load.set_defaults(func=cmd_load)

    doctor = sub.add_parser("doctor", help="validate the manifest and size every Lambda package")
    doctor.add_argument("--manifest", default="inferstack.toml")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "manifest", None) and not Path(args.manifest).exists():
        print(f"error: manifest {args.manifest} not found (pass --manifest FILE)", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(args.func(args))


if __name__ == "__main__":
    main()

"""`inferstack batch submit|status|wait|cancel|download`: bulk scoring on a running stack, local or deployed.

`submit MODEL FILE` uploads a local file to the stack's batch bucket first (a presigned PUT from
`POST /v1/batches/uploads`: no AWS credentials needed, only the API key); `s3://...` is submitted as is.
`wait` (and `submit --wait`) shows progress on standard error: rows done of the total, rows/s and ETA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from inferstack_infra.cli.common import add_remote, client, fail, print_json
from inferstack_infra.client import ApiClient, ClientError

TERMINAL = ("succeeded", "failed", "cancelled")


class Progress:
    """One line, rewritten: `rows done/total (pct) · rows/s · ETA`; rows/s over the whole run so far."""

    def __init__(self, out: TextIO = sys.stderr, clock: Any = time.monotonic) -> None:
        self.out, self.clock = out, clock
        self.start: float | None = None
        self.first_rows = 0

    def line(self, view: dict[str, Any]) -> str:
        rows = view["rows"]
        done = rows["succeeded"] + rows["failed"]
        total = rows["total"]
        now = self.clock()
        if self.start is None:
            self.start, self.first_rows = now, done
        elapsed = now - self.start
        rate = (done - self.first_rows) / elapsed if elapsed > 0 else 0.0
        if total is None:
            return f"{view['status']}: planning the input ..."
        pct = 100 * done / total if total else 100.0
        eta = f"ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else "ETA -"
        return (f"{view['status']}: {done:,}/{total:,} rows ({pct:.1f}%), {rows['failed']:,} failed, "
                f"chunk {view['chunks']['done']}/{view['chunks']['total']}, {rate:,.0f} rows/s, {eta}")

    def show(self, view: dict[str, Any]) -> None:
        self.out.write("\r" + self.line(view).ljust(100))
        self.out.flush()

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


def upload(api: ApiClient, path: Path, fmt: str) -> str:
    """PUT a local file to the stack's batch bucket; returns its s3:// URI."""
    _, accepted = api.call("POST", f"/v1/batches/uploads?format={fmt}")
    with path.open("rb") as body:
        response = httpx.put(accepted["upload_url"], content=body, timeout=None,
                             headers={"Content-Length": str(path.stat().st_size)})
    if response.status_code >= 300:
        raise ClientError(f"upload of {path} failed: {response.status_code} {response.text[:300]}")
    return str(accepted["input"])


def wait(api: ApiClient, batch_id: str, timeout_s: float, *, interval_s: float = 1.0,
         progress: Progress | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    progress = progress or Progress()
    try:
        while True:
            _, view = api.call("GET", f"/v1/batches/{batch_id}")
            progress.show(view)
            if view["status"] in TERMINAL and view["finished_at"]:
                return dict(view)
            if time.monotonic() > deadline:
                raise ClientError(f"batch {batch_id} is still {view['status']} after {timeout_s:.0f} s")
            time.sleep(interval_s)
    finally:
        progress.end()


def download(api: ApiClient, batch_id: str, directory: Path) -> dict[str, Any]:
    """The batch's output files, one `errors.jsonl` of all its errors files, and `_manifest.json`."""
    _, results = api.call("GET", f"/v1/batches/{batch_id}/results")
    directory.mkdir(parents=True, exist_ok=True)
    for item in results["files"]:
        with httpx.stream("GET", item["url"], timeout=None) as response, (directory / item["name"]).open("wb") as f:
            for block in response.iter_bytes():
                f.write(block)
    with (directory / "errors.jsonl").open("wb") as f:
        for item in results["errors"]:
            f.write(httpx.get(item["url"], timeout=None).content)
    (directory / "_manifest.json").write_text(json.dumps(results["manifest"], indent=2) + "\n")
    return dict(results["manifest"])


def cmd_batch(args: argparse.Namespace) -> int:
    api = client(args)
    try:
        if args.batch_command == "submit":
            source = args.input
            if not source.startswith("s3://"):
                path = Path(source)
                if not path.is_file():
                    fail(f"{source}: no such file (give a local file or an s3:// URI)")
                fmt = args.format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
                source = upload(api, path, fmt)
            else:
                fmt = args.format or ("csv" if source.lower().endswith(".csv") else "jsonl")
            body: dict[str, Any] = {"model": args.model, "input": source, "format": fmt}
            for key in ("output", "rows_per_chunk"):
                if getattr(args, key):
                    body[key] = getattr(args, key)
            if args.columns:
                body["columns"] = json.loads(args.columns)
            if args.webhook:
                body["webhook"] = {"url": args.webhook}
            headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
            _, accepted = api.call("POST", "/v1/batches", json=body, headers=headers)
            if not args.wait:
                print_json(accepted)
                return 0
            view = wait(api, accepted["batch_id"], args.timeout)
        elif args.batch_command == "status":
            view = api.call("GET", f"/v1/batches/{args.batch_id}")[1]
        elif args.batch_command == "wait":
            view = wait(api, args.batch_id, args.timeout)
        elif args.batch_command == "cancel":
            view = api.call("DELETE", f"/v1/batches/{args.batch_id}")[1]
        else:
            manifest = download(api, args.batch_id, Path(args.directory))
            print_json({"directory": args.directory, "files": manifest["files"], "rows": manifest["rows"]})
            return 0
        print_json(view)
        return 0 if view["status"] in ("succeeded", "running", "queued") else 1
    except json.JSONDecodeError as exc:
        fail(f"--columns is not JSON: {exc}")
    except ClientError as exc:
        fail(str(exc))


def register(sub: Any) -> None:
    batch = sub.add_parser("batch", help="score a whole file (JSON Lines or CSV) in bulk")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True)
    submit = batch_sub.add_parser("submit", help="submit a file (uploaded first if local); prints the batch's ID")
    submit.add_argument("model")
    submit.add_argument("input", metavar="FILE|s3://BUCKET/KEY")
    submit.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file name's extension")
    submit.add_argument("--output", metavar="s3://BUCKET/PREFIX/", help="default: the stack's batch bucket")
    submit.add_argument("--rows-per-chunk", type=int, dest="rows_per_chunk")
    submit.add_argument("--columns", help='CSV: JSON object of input -> columns, e.g. {"features": ["a", "b"]}')
    submit.add_argument("--webhook", help="https URL to notify when the batch ends")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--wait", action="store_true", help="wait for it to end, showing progress")
    submit.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    status = batch_sub.add_parser("status", help="a batch's state and counts")
    status.add_argument("batch_id")
    waiter = batch_sub.add_parser("wait", help="wait for a batch to end, showing progress; exits 1 unless it succeeded")
    waiter.add_argument("batch_id")
    waiter.add_argument("--timeout", type=float, default=3600)
    cancel = batch_sub.add_parser("cancel", help="cancel a batch: chunks not yet scored are skipped")
    cancel.add_argument("batch_id")
    down = batch_sub.add_parser("download", help="download an ended batch's outputs, errors and manifest")
    down.add_argument("batch_id")
    down.add_argument("directory")
    for p in (submit, status, waiter, cancel, down):
        add_remote(p)
        p.set_defaults(func=cmd_batch)

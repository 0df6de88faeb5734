"""Bulk scoring over `inferstack dev`: the API, the local Step Functions running the synthesized state machine,
the batch function's runtime process and the local S3, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, child_processes, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e
GOOD = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]
BATCH_S = 120


@pytest.fixture(scope="module")
def batch_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[tuple[RunningStack, str]]:
    d = tmp_path_factory.mktemp("batches")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "bulk"
[[api.plans]]
name = "pro"
throttle = {{ rate = 100, burst = 200 }}
[batches]
output_buckets = ["bulk-results"]
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
""")
    stack = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:pro", "--api-key", "other-key-0001:pro",
                      "--allow-loopback-webhooks", manifest=manifest)
    match = re.search(r"signed with (whsec_\S+)", stack.log.read_text())
    assert match
    yield stack, match.group(1)
    stop_dev(stack)


def upload(stack: RunningStack, data: bytes, fmt: str = "jsonl") -> str:
    accepted = stack.client().post(f"/v1/batches/uploads?format={fmt}").json()
    assert httpx.put(accepted["upload_url"], content=data).status_code == 200
    return str(accepted["input"])


def ended(stack: RunningStack, batch_id: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        view: dict[str, Any] = stack.client().get(f"/v1/batches/{batch_id}").json()
        return view if view["status"] not in ("queued", "running") and view["finished_at"] else None
    return check


def results(stack: RunningStack, batch_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    got = stack.client().get(f"/v1/batches/{batch_id}/results").json()
    lines = {kind: [json.loads(line) for f in got[kind] for line in httpx.get(f["url"]).text.splitlines()]
             for kind in ("files", "errors")}
    return got["manifest"], lines["files"], lines["errors"]


def rows_file(n: int, bad: dict[int, str] | None = None) -> bytes:
    lines = [json.dumps({"id": f"r{i}", "features": GOOD[i % 4]}) for i in range(1, n + 1)]
    for line, text in (bad or {}).items():
        lines[line - 1] = text
    return ("\n".join(lines) + "\n").encode()


def test_good_and_bad_lines_are_scored_completely_and_signed_webhook(batch_stack: tuple[RunningStack, str]) -> None:
    stack, secret = batch_stack
    receiver = WebhookReceiver(secret).start()
    try:
        bad = {3: "{oops", 10: json.dumps({"id": "r10", "features": [1, 2]}), 11: json.dumps({"feature": GOOD[0]})}
        data = rows_file(250, bad)
        response = stack.client().post("/v1/batches", json={
            "model": "iris", "input": upload(stack, data), "rows_per_chunk": 60, "webhook": {"url": receiver.url},
            "metadata": {"run": 1}})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        view = eventually(ended(stack, batch_id), BATCH_S)
        assert view["status"] == "succeeded"
        assert view["rows"] == {"total": 250, "succeeded": 247, "failed": 3}
        assert view["chunks"] == {"total": 5, "done": 5} and view["version"]
        manifest, outputs, errors = results(stack, batch_id)
        assert manifest["rows"] == view["rows"] and manifest["model"] == "iris"
        assert sorted(o["line"] for o in outputs) == [n for n in range(1, 251) if n not in bad]
        assert [(e["line"], e["error"]["type"]) for e in errors] == [
            (3, "malformed-line"), (10, "invalid-input"), (11, "invalid-input")]
        assert errors[1]["id"] == "r10" and "features" in errors[1]["error"]["detail"]
        # outputs equal direct predict calls, on a sample
        sample = [o for o in outputs if o["line"] in (1, 2, 99, 250)]
        direct = stack.client().post("/v1/models/iris/predict",
                                     json={"inputs": {"features": [GOOD[o["line"] % 4] for o in sample]}}).json()
        for i, out in enumerate(sample):
            assert out["outputs"] == {k: v[i] for k, v in direct["outputs"].items()}
            assert out["id"] == f"r{out['line']}"
        delivery = eventually(receiver.verified, 60)[0]  # verified with the standardwebhooks library
        assert delivery.webhook_id == f"msg_{batch_id}"
        assert delivery.payload["type"] == "batch.succeeded" and delivery.payload["data"]["metadata"] == {"run": 1}
        assert eventually(lambda: stack.client().get(f"/v1/batches/{batch_id}").json()["webhook"]["status"]
                          == "delivered", 60)
    finally:
        receiver.stop()


def test_submit_refuses_what_cannot_run(batch_stack: tuple[RunningStack, str]) -> None:
    stack, _ = batch_stack
    uri = upload(stack, rows_file(3))
    bucket = uri.split("/")[2]
    cases = [
        ({"input": f"s3://{bucket}/uploads/none.jsonl"}, "input", "does not exist"),
        ({"input": uri, "output": "s3://not-the-stacks/out/"}, "output", "may not write"),
        ({"input": uri, "format": "csv", "columns": {"features": ["a"]}}, "columns", "not in the CSV header"),
        ({"input": upload(stack, b"a,b\n1,2\n")}, "format", "not JSON Lines"),
    ]
    for body, field, detail in cases:
        response = stack.client().post("/v1/batches", json={"model": "iris", **body})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"][0]["input"] == field and detail in problem["detail"], problem
    assert stack.client().post("/v1/batches", json={"model": "nope", "input": uri}).status_code == 404
    assert stack.client().post("/v1/batches", json={"model": "iris"}).status_code in (400, 422)


def test_idempotent_resubmit_and_owner_scope(batch_stack: tuple[RunningStack, str]) -> None:
    stack, _ = batch_stack
    body = {"model": "iris", "input": upload(stack, rows_file(5)), "output": "s3://bulk-results/idem/"}
    first = stack.client().post("/v1/batches", json=body, headers={"Idempotency-Key": "bulk-1"})
    again = stack.client().post("/v1/batches", json=body, headers={"Idempotency-Key": "bulk-1"})
    assert first.status_code == again.status_code == 202
    assert again.json()["batch_id"] == first.json()["batch_id"] and again.headers["idempotent-replayed"] == "true"
    other = stack.client().post("/v1/batches", json={**body, "rows_per_chunk": 2},
                                headers={"Idempotency-Key": "bulk-1"})
    assert other.status_code == 409
    batch_id = first.json()["batch_id"]
    assert eventually(ended(stack, batch_id), BATCH_S)["rows"]["succeeded"] == 5
    assert stack.client("other-key-0001").get(f"/v1/batches/{batch_id}").status_code == 404


def test_cancel_stops_the_chunks_and_says_how_far_it_got(batch_stack: tuple[RunningStack, str]) -> None:
    stack, _ = batch_stack
    response = stack.client().post("/v1/batches", json={"model": "iris", "input": upload(stack, rows_file(20_000)),
                                                        "rows_per_chunk": 200})
    batch_id = response.json()["batch_id"]
    eventually(lambda: stack.client().get(f"/v1/batches/{batch_id}").json()["chunks"]["done"] >= 1, BATCH_S)
    cancelled = stack.client().delete(f"/v1/batches/{batch_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    view = eventually(ended(stack, batch_id), BATCH_S)
    assert view["status"] == "cancelled" and view["chunks"]["total"] == 100
    assert 1 <= view["chunks"]["done"] < 100 and view["rows"]["succeeded"] == 200 * view["chunks"]["done"]
    manifest, outputs, _ = results(stack, batch_id)
    assert manifest["status"] == "cancelled" and len(outputs) == view["rows"]["succeeded"]
    assert stack.client().delete(f"/v1/batches/{batch_id}").status_code == 200  # cancelling again: no change
    done = stack.client().post("/v1/batches", json={"model": "iris", "input": upload(stack, rows_file(2))}).json()
    eventually(ended(stack, done["batch_id"]), BATCH_S)
    assert stack.client().delete(f"/v1/batches/{done['batch_id']}").status_code == 409


def test_a_crashed_chunk_is_retried_without_duplicates(batch_stack: tuple[RunningStack, str]) -> None:
    stack, _ = batch_stack
    response = stack.client().post("/v1/batches", json={"model": "iris", "input": upload(stack, rows_file(30_000)),
                                                        "rows_per_chunk": 500})
    batch_id = response.json()["batch_id"]
    eventually(lambda: stack.client().get(f"/v1/batches/{batch_id}").json()["chunks"]["done"] >= 2, BATCH_S)
    (pid,) = child_processes(stack.proc.pid, "--name batch-iris")
    os.kill(pid, signal.SIGKILL)  # the execution environment dies, most likely mid-chunk
    view = eventually(ended(stack, batch_id), BATCH_S)
    assert view["status"] == "succeeded" and view["rows"] == {"total": 30_000, "succeeded": 30_000, "failed": 0}
    _, outputs, _ = results(stack, batch_id)
    lines = [o["line"] for o in outputs]
    assert len(lines) == len(set(lines)) == 30_000
    assert re.search(r"ScoreChunk: Runtime.ExitError; retry 1", stack.log.read_text())


def test_the_cli_uploads_waits_with_progress_and_downloads(batch_stack: tuple[RunningStack, str],
                                                           tmp_path: Path) -> None:
    stack, _ = batch_stack
    source = tmp_path / "rows.jsonl"
    source.write_bytes(rows_file(1200, {7: "not json"}))
    remote = ["--url", stack.url, "--api-key", PRO_KEY]
    cli = [sys.executable, "-m", "inferstack_infra.cli", "batch"]
    submitted = subprocess.run([*cli, "submit", "iris", str(source), "--rows-per-chunk", "300", "--wait", *remote],
                               capture_output=True, text=True, timeout=BATCH_S, cwd=ROOT, check=False)
    assert submitted.returncode == 0, submitted.stderr
    view = json.loads(submitted.stdout)
    assert view["status"] == "succeeded" and view["rows"] == {"total": 1200, "succeeded": 1199, "failed": 1}
    assert re.search(r"1,200/1,200 rows \(100\.0%\), 1 failed, chunk 4/4, [\d,]+ rows/s", submitted.stderr)
    out = tmp_path / "out"
    downloaded = subprocess.run([*cli, "download", view["batch_id"], str(out), *remote], capture_output=True,
                                text=True, timeout=60, cwd=ROOT, check=False)
    assert downloaded.returncode == 0, downloaded.stderr
    lines = [json.loads(line) for f in sorted(out.glob("part-*.jsonl")) for line in f.read_text().splitlines()]
    assert [o["line"] for o in lines] == [n for n in range(1, 1201) if n != 7]
    (error,) = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert error["line"] == 7 and error["error"]["type"] == "malformed-line"
    assert json.loads((out / "_manifest.json").read_text())["status"] == "succeeded"

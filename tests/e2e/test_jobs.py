"""The jobs tier under `inferstack dev`, over real HTTP: queues, pollers and functions as separate parts."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest
from onnx import TensorProto, helper

from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.e2e.conftest import FREE_KEY, PRO_KEY, RunningStack, child_processes, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def fragile_model(path: Path) -> Path:
    """A model that passes signature validation but fails at run time unless rows*cols is divisible by 3
    (a Reshape to [-1, 3]): a real model error, for the retry and dead-letter path."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "K"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "fragile", [x], [y], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[tuple[RunningStack, str]]:
    d = tmp_path_factory.mktemp("jobs")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "e2ejobs"
[[api.plans]]
name = "free"
throttle = {{ rate = 50, burst = 100 }}
[jobs]
worker_timeout_s = 1
max_receive_count = 2
webhook = {{ backoff_base_s = 0.5, max_attempts = 4, timeout_s = 5 }}
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
[[models]]
name = "fragile"
path = "{fragile_model(d / 'fragile.onnx')}"
tier = "light"
""")
    stack = start_dev(d / "dev.log", "--allow-loopback-webhooks", "--api-key", f"{PRO_KEY}:free",
                      "--api-key", f"{FREE_KEY}:free", manifest=manifest)
    match = re.search(r"signed with (whsec_\S+)", stack.log.read_text())
    assert match, stack.log.read_text()
    yield stack, match.group(1)
    stop_dev(stack)


@pytest.fixture
def receiver(jobs_stack: tuple[RunningStack, str]) -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(jobs_stack[1]).start()
    yield r
    r.stop()


def submit(stack: RunningStack, body: dict[str, Any], **headers: str) -> httpx.Response:
    return stack.client().post("/v1/jobs", json=body, headers=headers)


def finished(stack: RunningStack, job_id: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = stack.client().get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None
    return check


def test_submit_returns_at_once_then_result_and_verified_webhook(jobs_stack: tuple[RunningStack, str],
                                                                 receiver: WebhookReceiver) -> None:
    stack, _ = jobs_stack
    response = submit(stack, {"model": "iris", "inputs": {"features": ROWS}, "webhook": {"url": receiver.url},
                              "metadata": {"order": 7}})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and response.headers["location"] == accepted["links"]["self"]
    job = eventually(finished(stack, accepted["job_id"]))
    assert job["status"] == "succeeded" and job["result"]["label"] == [0, 2] and job["metadata"] == {"order": 7}
    delivery = eventually(receiver.verified)[0]  # verified with the standardwebhooks library
    assert delivery.webhook_id == f"msg_{accepted['job_id']}"
    assert delivery.payload["data"]["result"] == job["result"]
    job = eventually(lambda: (j := stack.client().get(f"/v1/jobs/{accepted['job_id']}").json())
                   ["webhook"]["status"] == "delivered" and j)
    assert len(job["webhook"]["attempts"]) == 1


def test_idempotency_key(jobs_stack: tuple[RunningStack, str]) -> None:
    stack, _ = jobs_stack
    body = {"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]]}
    first = submit(stack, body, **{"Idempotency-Key": "e2e-key-1"})
    again = submit(stack, body, **{"Idempotency-Key": "e2e-key-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    conflict = submit(stack, {**body, "metadata": {"x": 1}}, **{"Idempotency-Key": "e2e-key-1"})
    assert conflict.status_code == 409 and conflict.json()["job_id"] == first.json()["job_id"]


def test_jobs_are_private_to_their_key(jobs_stack: tuple[RunningStack, str]) -> None:
    stack, _ = jobs_stack
    job_id = submit(stack, {"model": "iris", "inputs": ROWS}).json()["job_id"]
    other = stack.client(key=FREE_KEY).get(f"/v1/jobs/{job_id}")
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"


def test_bad_submissions_get_clear_errors(jobs_stack: tuple[RunningStack, str]) -> None:
    stack, _ = jobs_stack
    no_model = submit(stack, {"inputs": ROWS})
    # (a job names a model or a cascade: the API function says so, naming both)
    assert no_model.status_code == 422 and "model (or cascade) is required" in no_model.json()["detail"]
    unknown = submit(stack, {"model": "nope", "inputs": ROWS})
    assert unknown.status_code == 404
    extra = submit(stack, {"model": "iris", "inputs": ROWS, "priority": 1})
    assert extra.status_code == 422 and extra.json()["errors"][0]["input"] == "priority"
    for url in ("https://169.254.169.254/latest", "https://10.0.0.1/h", "ftp://example.com/"):
        refused = submit(stack, {"model": "iris", "inputs": ROWS, "webhook": {"url": url}})
        assert refused.status_code == 422, url
        assert refused.json()["errors"][0]["input"] == "webhook.url"


def test_bad_input_fails_the_job_without_retry(jobs_stack: tuple[RunningStack, str]) -> None:
    stack, _ = jobs_stack
    job_id = submit(stack, {"model": "iris", "inputs": [[1, 2, 3]]}).json()["job_id"]
    job = eventually(finished(stack, job_id))
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["type"] == "invalid-input" and "dimension 1 must be 4" in job["error"]["detail"]


def test_model_errors_retry_then_dead_letter_fails_the_job(jobs_stack: tuple[RunningStack, str]) -> None:
    # GIVEN a job the model fails on every time (2 rows x 2 cols cannot reshape to [-1, 3])
    stack, _ = jobs_stack
    ok = submit(stack, {"model": "fragile", "inputs": [[1, 2, 3]]}).json()["job_id"]
    bad = submit(stack, {"model": "fragile", "inputs": [[1, 2], [3, 4]]}).json()["job_id"]
    assert eventually(finished(stack, ok))["status"] == "succeeded"
    # THEN it is retried (maxReceiveCount 2, visibility 6 s), lands in the DLQ and is marked failed
    job = eventually(finished(stack, bad), timeout_s=60)
    assert job["status"] == "failed" and job["attempts"] == 2
    assert job["error"]["type"] == "processing-failed"
    assert "gave up after 2 attempt(s)" in job["error"]["detail"]
    # the kind of failure (onnxruntime's Fail), not its message (node names, shapes, paths): those are logged
    assert "Fail" in job["error"]["detail"] and "Reshape" not in job["error"]["detail"]


def test_webhook_500_then_200_and_410(jobs_stack: tuple[RunningStack, str], receiver: WebhookReceiver) -> None:
    stack, _ = jobs_stack
    receiver.script = [500, 200]
    retried = submit(stack, {"model": "iris", "inputs": ROWS, "webhook": {"url": receiver.url}}).json()["job_id"]
    job = eventually(lambda: (j := stack.client().get(f"/v1/jobs/{retried}").json())["webhook"]["status"]
                   == "delivered" and j)
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [500, 200]
    receiver.script = [410]
    gone = submit(stack, {"model": "iris", "inputs": ROWS, "webhook": {"url": receiver.url}}).json()["job_id"]
    job = eventually(lambda: (j := stack.client().get(f"/v1/jobs/{gone}").json())["webhook"]["status"]
                   == "gone" and j)
    assert len(job["webhook"]["attempts"]) == 1 and job["result"] is not None


def test_worker_killed_then_job_completes_once(jobs_stack: tuple[RunningStack, str]) -> None:
    # GIVEN the iris worker's execution environment is killed
    stack, _ = jobs_stack
    (pid,) = child_processes(stack.proc.pid, "--name worker-iris")
    os.kill(pid, signal.SIGKILL)
    # WHEN a job arrives: its first delivery fails with the dead environment, which is replaced
    job_id = submit(stack, {"model": "iris", "inputs": ROWS}).json()["job_id"]
    # THEN after the visibility timeout the message is delivered again and the job completes, once
    job = eventually(finished(stack, job_id), timeout_s=60)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["result"]["label"] == [0, 2]
    assert child_processes(stack.proc.pid, "--name worker-iris") != [pid]

"""Faults injected into a running `inferstack dev`. Each test states what must hold.

Also in the suite, elsewhere: a worker killed (its process SIGKILLed) and a worker dying mid-batch
(tests/e2e/test_jobs.py, tests/functional/test_jobs.py), the same message delivered twice
(tests/functional/test_jobs.py).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.e2e.conftest import (
    PRO_KEY,
    RunningStack,
    child_processes,
    eventually,
    free_port,
    start_dev,
    stop_dev,
)

pytestmark = pytest.mark.e2e
#: Faults take longer to heal than a plain job to run.
HEAL_S = 60

ROWS = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[tuple[RunningStack, str]]:
    d = tmp_path_factory.mktemp("faults")
    manifest = d / "inferstack.toml"
    mlp = iris_model.with_name("mlp.onnx")
    manifest.write_text(f"""
name = "faults"
[[api.plans]]
name = "free"
throttle = {{ rate = 100, burst = 200 }}
[jobs]
worker_timeout_s = 1
max_receive_count = 5
webhook = {{ backoff_base_s = 1, max_attempts = 8, timeout_s = 3 }}
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
[[models]]
name = "mlp"
path = "{mlp}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
""")
    stack = start_dev(d / "dev.log", "--allow-loopback-webhooks", "--api-key", f"{PRO_KEY}:free", manifest=manifest)
    secret = re.search(r"signed with (whsec_\S+)", stack.log.read_text())
    assert secret, stack.log.read_text()
    yield stack, secret.group(1)
    stop_dev(stack)


def test_webhook_receiver_down_for_a_while_then_back(fault_stack: tuple[RunningStack, str]) -> None:
    # MUST HOLD: the result is readable all along; the webhook is delivered once the receiver is back, with
    # every failed attempt recorded; one terminal state
    stack, secret = fault_stack
    client = stack.client()
    port = free_port()  # nothing listens there yet: the receiver is down
    job_id = client.post("/v1/jobs", json={"model": "iris", "inputs": ROWS,
                                           "webhook": {"url": f"http://127.0.0.1:{port}/hooks"}}).json()["job_id"]
    job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["webhook"]["attempts"] and j,
                     HEAL_S)
    assert job["status"] == "succeeded" and job["result"] is not None
    assert job["webhook"]["status"] == "pending" and "ConnectError" in job["webhook"]["attempts"][0]["error"]
    receiver = WebhookReceiver(secret, port=port).start()
    try:
        job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["webhook"]["status"]
                         == "delivered" and j, HEAL_S)
        assert len(receiver.verified()) == 1 and receiver.verified()[0].webhook_id == f"msg_{job_id}"
        attempts = job["webhook"]["attempts"]
        assert attempts[-1]["status_code"] == 200 and all(a["status_code"] is None for a in attempts[:-1])
        assert job["status"] == "succeeded"
    finally:
        receiver.stop()


def test_heavy_server_killed_then_replaced(fault_stack: tuple[RunningStack, str]) -> None:
    # MUST HOLD: while the container is down, predict answers 503 with Retry-After (never a hang or a 500);
    # the endpoint replaces the container; a heavy job submitted meanwhile completes once
    stack, _ = fault_stack
    client = stack.client()
    features = [[0.1] * 512]
    assert client.post("/v1/models/mlp/predict", json={"inputs": features}).status_code == 200
    (pid,) = child_processes(stack.proc.pid, "inferstack.heavy.server")
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    down = client.post("/v1/models/mlp/predict", json={"inputs": features})
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert down.json()["type"] == "urn:inferstack:problem:unavailable"
    submitted = client.post("/v1/jobs", json={"model": "mlp", "inputs": features})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    eventually(lambda: client.post("/v1/models/mlp/predict", json={"inputs": features}).status_code == 200, HEAL_S)
    assert child_processes(stack.proc.pid, "inferstack.heavy.server") != [pid]
    job = eventually(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed")
                     and j, HEAL_S)
    assert job["status"] == "succeeded" and len(job["result"]["logits"]) == 1


def test_health_stays_up_while_a_function_is_replaced(fault_stack: tuple[RunningStack, str]) -> None:
    # MUST HOLD: a killed API function's environment is replaced; the request that found it dead gets a
    # clean 502 problem, the next ones succeed
    stack, _ = fault_stack
    (pid,) = child_processes(stack.proc.pid, "--name api ")
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    first = httpx.get(f"{stack.url}/v1/health", timeout=30)
    assert first.status_code in (200, 502)
    if first.status_code == 502:
        assert first.headers["content-type"] == "application/problem+json"
    assert eventually(lambda: httpx.get(f"{stack.url}/v1/health", timeout=30).status_code == 200, HEAL_S)


def test_aws_emulator_restarted_while_jobs_are_queued(fault_stack: tuple[RunningStack, str]) -> None:
    # MUST HOLD: no accepted job is lost (the emulator's state lives in the dev process and survives its
    # server's restart); every accepted job reaches one terminal state; a submission during the outage is
    # refused with 503 and Retry-After, never a 500, and nothing half-accepted is left behind
    stack, _ = fault_stack
    client = stack.client()
    accepted = [client.post("/v1/jobs", json={"model": "iris", "inputs": ROWS}).json()["job_id"] for _ in range(5)]
    os.kill(stack.proc.pid, signal.SIGUSR1)  # the server goes down for 3 s
    time.sleep(0.5)
    during = client.post("/v1/jobs", json={"model": "iris", "inputs": ROWS}, headers={"Idempotency-Key": "outage-1"})
    assert during.status_code in (202, 503), during.text
    if during.status_code == 503:
        assert during.headers["retry-after"] == "2"
        assert during.json()["type"] == "urn:inferstack:problem:unavailable"
    retried = eventually(lambda: (r := client.post("/v1/jobs", json={"model": "iris", "inputs": ROWS},
                                                   headers={"Idempotency-Key": "outage-1"})).status_code == 202 and r,
                         HEAL_S)
    accepted.append(retried.json()["job_id"])

    def all_done() -> list[dict[str, Any]] | None:
        jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in accepted]
        return jobs if all(j.get("status") in ("succeeded", "failed") for j in jobs) else None

    jobs = eventually(all_done, timeout_s=90)
    assert [j["status"] for j in jobs] == ["succeeded"] * len(accepted)
    assert all(j["result"]["label"] == [0] for j in jobs)
    assert "restarting the emulator" in stack.log.read_text()

"""A heavy model that scales to zero, under `inferstack dev`: at zero, predict answers 503 with Retry-After and
starts the container; a job submitted meanwhile waits in its queue and completes once the model is up; after
an idle period the container stops and the next call is a 503 again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e

MLP = ROOT / "models" / "mlp.onnx"
ROW = [[0.25] * 512]
IDLE_S = 6


@pytest.fixture(scope="module")
def zero_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[RunningStack]:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    d = tmp_path_factory.mktemp("zero")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "zero-e2e"
[[api.plans]]
name = "pro"
throttle = {{ rate = 100, burst = 200 }}
[[models]]
name = "mlp"
path = "{MLP}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
instances = {{ min = 0, max = 2 }}
""")
    stack = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:pro", "--scale-in-after", str(IDLE_S),
                      manifest=manifest)
    yield stack
    stop_dev(stack)


def predict(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/models/mlp/predict", json={"inputs": ROW})


def test_at_zero_predict_answers_503_then_serves_and_a_job_submitted_meanwhile_completes(
        zero_stack: RunningStack) -> None:
    client = zero_stack.client()
    # GIVEN the model at zero (nothing started it yet) WHEN predict is called
    first = predict(client)
    # THEN 503 problem+json with Retry-After: the model is starting
    assert first.status_code == 503, first.text
    assert first.headers["content-type"] == "application/problem+json"
    assert first.json()["type"] == "urn:inferstack:problem:scaling-out"
    retry_after = int(first.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # WHEN a job is submitted meanwhile THEN it is accepted and waits
    job_id = client.post("/v1/jobs", json={"model": "mlp", "inputs": ROW}).json()["job_id"]
    # WHEN the client retries after Retry-After THEN once the container is up predict serves
    deadline = time.monotonic() + 120
    answer = first
    while answer.status_code == 503 and time.monotonic() < deadline:
        time.sleep(int(answer.headers.get("Retry-After", "1")))
        answer = predict(client)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["outputs"]["logits"]) == 1
    # AND the job completes, its waits not counted as attempts
    job: dict[str, Any] = eventually(lambda: _finished(client, job_id), timeout_s=60)
    assert job["status"] == "succeeded", job
    assert len(job["result"]["logits"]) == 1 and job["attempts"] == 1


def test_after_an_idle_period_the_container_stops_and_the_next_call_is_503_again(zero_stack: RunningStack) -> None:
    client = zero_stack.client()
    eventually(lambda: predict(client).status_code == 200, timeout_s=120)  # up (the previous test, or now)
    # WHEN no call comes for longer than --scale-in-after THEN the container is stopped
    eventually(lambda: "scaling zero-e2e-mlp-ic in to zero" in zero_stack.log.read_text(), timeout_s=IDLE_S + 30)
    # AND the next call finds the model at zero
    again = predict(client)
    assert again.status_code == 503 and "Retry-After" in again.headers


def _finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] in ("succeeded", "failed") else None

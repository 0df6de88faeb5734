"""The heavy tier under `inferstack dev`: predict and jobs reach the container through boto3's
sagemaker-runtime client, as on AWS."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def features(n: int) -> list[list[float]]:
    return np.random.default_rng(n).random((n, 512)).round(3).tolist()


def test_heavy_predict(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/mlp/predict", json={"inputs": {"features": features(3)}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "mlp" and len(body["outputs"]["probabilities"]) == 3
    assert all(abs(sum(row) - 1) < 1e-4 for row in body["outputs"]["probabilities"])


def test_heavy_bad_input_is_the_containers_422(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/mlp/predict", json={"inputs": [[1.0, 2.0]]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert error["input"] == "inputs.features" and error["expected"] == "[N, 512]"


def test_heavy_model_is_listed_with_its_signature(dev_stack: RunningStack) -> None:
    info = dev_stack.client().get("/v1/models/mlp").json()
    assert info["tier"] == "heavy" and info["inputs"][0]["shape"] == ["N", 512]


def test_heavy_job_runs_through_the_endpoint(dev_stack: RunningStack) -> None:
    client = dev_stack.client()
    ids = [client.post("/v1/jobs", json={"model": "mlp", "inputs": features(2)}).json()["job_id"]
           for _ in range(3)]
    bad = client.post("/v1/jobs", json={"model": "mlp", "inputs": [[1.0]]}).json()["job_id"]
    deadline = time.monotonic() + 60
    jobs: dict[str, dict] = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline and len(jobs) < 4:
        for job_id in [*ids, bad]:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed"):
                jobs[job_id] = job
        time.sleep(0.3)
    assert [jobs[i]["status"] for i in ids] == ["succeeded"] * 3
    assert all(len(jobs[i]["result"]["logits"]) == 2 for i in ids)
    assert jobs[bad]["status"] == "failed" and jobs[bad]["error"]["type"] == "invalid-input"
    assert jobs[bad]["attempts"] == 1  # the container's 422 is not retried

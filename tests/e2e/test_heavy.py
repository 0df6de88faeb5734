"""The heavy tier under `inferstack dev`: predict and jobs reach the container through boto3's
sagemaker-runtime client, as on AWS. The example's heavy model is minilm, whose handler runs in the
container: texts in, embeddings out."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack

pytestmark = pytest.mark.e2e

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]


def test_heavy_predict_embeds_texts(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/minilm/predict", json={"inputs": {"text": TEXTS}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "minilm" and len(body["version"]) == 12
    assert response.headers["x-model-version"] == body["version"]  # the container said so through SageMaker
    vectors = np.array(body["outputs"]["embeddings"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # the paraphrase is the closer one


def test_heavy_bad_input_is_the_containers_422(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/minilm/predict", json={"inputs": {"text": ["ok", 7]}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.headers["x-model-version"]) == 12
    (error,) = response.json()["errors"]
    assert error["input"] == "inputs.text[1]" and "string" in error["detail"]


def test_heavy_model_is_listed_with_its_schemas(dev_stack: RunningStack) -> None:
    info = dev_stack.client().get("/v1/models/minilm").json()
    assert info["tier"] == "heavy"
    assert [i["name"] for i in info["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert info["request_schema"]["required"] == ["text"]
    assert set(info["response_schema"]["properties"]) == {"embeddings", "tokens"}
    document = dev_stack.client(None).get("/v1/openapi.json").json()
    operation = document["paths"]["/v1/models/minilm/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["example"]["inputs"]["text"]
    assert document["components"]["schemas"]["MinilmInputs"]["properties"]["text"]["maxItems"] == 128


def test_heavy_job_runs_through_the_endpoint(dev_stack: RunningStack) -> None:
    client = dev_stack.client()
    ids = [client.post("/v1/jobs", json={"model": "minilm", "inputs": {"text": TEXTS[:n]}}).json()["job_id"]
           for n in (1, 2, 3)]
    bad = client.post("/v1/jobs", json={"model": "minilm", "inputs": {"text": "not a list"}}).json()["job_id"]
    deadline = time.monotonic() + 60
    jobs: dict[str, dict] = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline and len(jobs) < 4:
        for job_id in [*ids, bad]:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed"):
                jobs[job_id] = job
        time.sleep(0.3)
    assert [jobs[i]["status"] for i in ids] == ["succeeded"] * 3
    assert [len(jobs[i]["result"]["embeddings"]) for i in ids] == [1, 2, 3]
    assert {jobs[i]["model_version"] for i in ids} == {client.get("/v1/models/minilm").json()["version"]}
    assert jobs[bad]["status"] == "failed" and jobs[bad]["error"]["type"] == "invalid-input"
    assert "inputs.text" in jobs[bad]["error"]["detail"]
    assert jobs[bad]["attempts"] == 1  # the container's 422 is not retried


def test_the_readme_similarity_example_ranks_the_relevant_document_first(dev_stack: RunningStack) -> None:
    # the README's semantic-search example, run as a user would against `make dev`
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "similarity.py"), "how do I get my money back?",
                          "--url", dev_stack.url, "--api-key", PRO_KEY],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    ranked = [line.split("  ", 1) for line in out.stdout.strip().splitlines()]
    assert len(ranked) == 5 and ranked[0][1].startswith("Refunds are issued")
    scores = [float(score) for score, _ in ranked]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)

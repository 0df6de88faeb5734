"""Bulk scoring with a heavy model over `inferstack dev`: the synthesized Batch Transform state machine run by
the local Step Functions, its job served by a container of the model started for the job (as SageMaker starts
instances of their own), lines split and packed as Batch Transform does, answers numbered by the heavy batch
function."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import RunningStack, eventually
from tests.e2e.test_batches import ended, results, upload
from tests.functional.test_minilm import TEXTS

pytestmark = pytest.mark.e2e
BATCH_S = 300


def test_a_jsonl_file_of_texts_is_scored_by_a_transform_job_of_minilm(dev_stack: RunningStack) -> None:
    texts = TEXTS[:20]
    lines = [json.dumps({"id": f"t{i}", "text": [t]}) for i, t in enumerate(texts)]
    lines[5:5] = ["{oops", json.dumps({"text": [1]})]  # lines 6 and 7
    response = dev_stack.client().post("/v1/batches", json={
        "model": "minilm", "input": upload(dev_stack, ("\n".join(lines) + "\n").encode()), "rows_per_chunk": 8})
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    view = eventually(ended(dev_stack, batch_id), BATCH_S)
    assert view["status"] == "succeeded", view
    assert view["rows"] == {"total": 22, "succeeded": 20, "failed": 2}
    assert view["chunks"] == {"total": 3, "done": 3}
    manifest, outputs, errors = results(dev_stack, batch_id)
    assert manifest["rows"] == view["rows"] and manifest["model"] == "minilm" and len(manifest["files"]) == 3
    assert [o["line"] for o in outputs] == [*range(1, 6), *range(8, 23)]
    assert [o["id"] for o in outputs] == [f"t{i}" for i in range(20)]
    assert [(e["line"], e["error"]["type"]) for e in errors] == [(6, "malformed-line"), (7, "invalid-input")]
    # outputs equal direct predict calls, on a sample
    sample = [0, 7, 19]
    direct = dev_stack.client().post("/v1/models/minilm/predict",
                                     json={"inputs": {"text": [texts[i] for i in sample]}}, timeout=60).json()
    np.testing.assert_allclose([outputs[i]["outputs"]["embeddings"][0] for i in sample],
                               direct["outputs"]["embeddings"], atol=1e-5)


def test_a_heavy_model_takes_json_lines_only(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/batches", json={
        "model": "minilm", "input": upload(dev_stack, b"text\nhello\n", "csv"), "format": "csv"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["input"] == "format"
    assert httpx.codes.is_client_error(response.status_code)


def test_cancel_while_its_transform_job_runs_stops_the_job(dev_stack: RunningStack) -> None:
    lines = [json.dumps({"id": f"t{i}", "text": [TEXTS[i % len(TEXTS)]]}) for i in range(400)]
    seen = len(dev_stack.log.read_text())
    response = dev_stack.client().post("/v1/batches", json={
        "model": "minilm", "input": upload(dev_stack, ("\n".join(lines) + "\n").encode())})
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    # WHEN the batch is cancelled once its job runs (the job's container is starting or scoring)
    eventually(lambda: "sagemaker minilm:job" in dev_stack.log.read_text()[seen:], BATCH_S)
    cancelled = dev_stack.client().delete(f"/v1/batches/{batch_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    # THEN the job is stopped (its .sync task fails with it Stopped) and the batch ends cancelled, saying so
    view = eventually(ended(dev_stack, batch_id), BATCH_S)
    assert view["status"] == "cancelled" and view["error"]["type"] == "transform-stopped", view
    assert "the job was Stopped before scoring all 400 lines" in view["error"]["detail"]
    manifest, outputs, errors = results(dev_stack, batch_id)
    assert manifest["status"] == "cancelled" and outputs == [] and errors == []

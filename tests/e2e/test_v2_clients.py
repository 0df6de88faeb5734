"""Unmodified third-party clients of the Open Inference Protocol against `inferstack dev`, as a user calls them:
tritonclient's HTTP client (with the stage as its base path, as a deployed invoke URL has it, and the x-api-key
header) and the KServe Python SDK's REST client (in its own environment), for the light iris and the heavy minilm
(a BYTES `text` tensor in, `embeddings` FP32 out)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack

pytestmark = pytest.mark.e2e

HEADERS = {"x-api-key": PRO_KEY}
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)
TEXTS = np.array(["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."],
                 dtype=object)
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"


@pytest.fixture(scope="module")
def client(dev_stack: RunningStack) -> Iterator[triton.InferenceServerClient]:
    # the base path: the API's stage, as in https://<api>.execute-api.<region>.amazonaws.com/prod
    with triton.InferenceServerClient(dev_stack.url.removeprefix("http://") + "/prod") as c:
        yield c


def v1_predict(stack: RunningStack, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    response = stack.client().post(f"/v1/models/{model}/predict", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs: dict[str, Any] = response.json()["outputs"]
    return outputs


def test_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()  # open, like /v1/health
    assert client.get_server_metadata(headers=HEADERS)["extensions"] == ["binary_tensor_data"]
    iris = client.get_model_metadata("iris", headers=HEADERS)
    assert iris["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in iris["outputs"]] == [
        ("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 3])]
    assert client.is_model_ready("iris", headers=HEADERS)
    assert client.is_model_ready("iris", iris["versions"][0], headers=HEADERS)
    minilm = client.get_model_metadata("minilm", headers=HEADERS)
    assert minilm["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("nope", headers=HEADERS)
    assert missing.value.status() == "404" and "nope" in missing.value.message()
    with pytest.raises(InferenceServerException) as no_key:
        client.get_model_metadata("iris")  # refused by the gateway itself
    assert no_key.value.status() == "403" and "x-api-key" in no_key.value.message()


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_iris_infer_matches_v1(client: triton.InferenceServerClient, dev_stack: RunningStack, binary: bool,
                               compression: str | None) -> None:
    # GIVEN rows sent as JSON or binary tensors, the request and response compressed or not
    features = triton.InferInput("features", list(ROWS.shape), "FP32")
    features.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary),
               triton.InferRequestedOutput("label", binary_data=binary)]
    # WHEN tritonclient infers
    result = client.infer("iris", [features], outputs=outputs, request_id="r-9", headers=dict(HEADERS),
                          request_compression_algorithm=compression, response_compression_algorithm=compression)
    # THEN it reads the same answer as /v1 gives, with its request ID
    expected = v1_predict(dev_stack, "iris", {"features": ROWS.tolist()})
    assert result.get_response()["id"] == "r-9"
    assert result.as_numpy("label").tolist() == expected["label"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-6)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities", "label"]


def test_iris_binary_by_default_and_a_version(client: triton.InferenceServerClient) -> None:
    # tritonclient asks for every output in binary when it names none (binary_data_output)
    features = triton.InferInput("features", list(ROWS.shape), "FP32")
    features.set_data_from_numpy(ROWS)
    version = client.get_model_metadata("iris", headers=HEADERS)["versions"][0]
    result = client.infer("iris", [features], model_version=version, headers=dict(HEADERS))
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    assert result.as_numpy("label").dtype == np.int64
    with pytest.raises(InferenceServerException) as stale:
        client.infer("iris", [features], model_version="0000", headers=dict(HEADERS))
    assert stale.value.status() == "404"


def test_bad_input_is_the_v1_422(client: triton.InferenceServerClient) -> None:
    features = triton.InferInput("features", [1, 3], "FP32")
    features.set_data_from_numpy(ROWS[:1, :3], binary_data=True)
    with pytest.raises(InferenceServerException) as error:
        client.infer("iris", [features], headers=dict(HEADERS))
    assert error.value.status() == "422"
    assert "inputs.features: dimension 1 must be 4, got 3" in error.value.message()


@pytest.mark.parametrize("binary", [False, True])
def test_minilm_texts_in_embeddings_out(client: triton.InferenceServerClient, dev_stack: RunningStack,
                                        binary: bool) -> None:
    # GIVEN texts as a BYTES tensor to the heavy model (through its proxy and the SageMaker stand-in)
    text = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(TEXTS, binary_data=binary)
    # WHEN tritonclient infers, gzip both ways
    result = client.infer("minilm", [text], outputs=[triton.InferRequestedOutput("embeddings", binary_data=binary)],
                          headers=dict(HEADERS), request_compression_algorithm="gzip",
                          response_compression_algorithm="gzip")
    # THEN the embeddings are /v1's, as float32 unit vectors
    embeddings = result.as_numpy("embeddings")
    assert embeddings.dtype == np.float32 and embeddings.shape == (3, 384)
    expected = v1_predict(dev_stack, "minilm", {"text": TEXTS.tolist()})["embeddings"]
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)
    assert result.as_numpy("tokens") is None  # not asked for


def test_minilm_bad_text_is_the_handlers_422(client: triton.InferenceServerClient) -> None:
    text = triton.InferInput("text", [129], "BYTES")
    text.set_data_from_numpy(np.array(["x"] * 129, dtype=object))
    with pytest.raises(InferenceServerException) as error:
        client.infer("minilm", [text], headers=dict(HEADERS))
    assert error.value.status() == "422" and "inputs.text" in error.value.message()


def test_kserve_sdk_rest_client(dev_stack: RunningStack) -> None:
    # GIVEN the KServe SDK in its own environment (make setup builds it)
    assert KSERVE_PYTHON.exists(), "the KServe SDK environment is missing: run `make setup`"
    # WHEN its REST client (protocol v2) calls the stack
    out = subprocess.run([str(KSERVE_PYTHON), str(ROOT / "tests" / "clients" / "kserve_v2.py"), dev_stack.url,
                          PRO_KEY], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    # THEN health, readiness, JSON and binary inputs, BYTES texts and errors all work as with Triton's client
    assert result["live"] is True and result["ready"] is True and result["iris_ready"] is True
    expected = v1_predict(dev_stack, "iris", {"features": ROWS[:2].tolist()})
    for binary in ("False", "True"):
        assert result[f"iris_binary_{binary}"]["label"] == expected["label"]
        np.testing.assert_allclose(result[f"iris_binary_{binary}"]["probabilities"], expected["probabilities"],
                                   rtol=1e-6)
        assert result[f"iris_binary_{binary}_id"] == "k1"
    assert np.array(result["minilm"]["embeddings"]).shape == (2, 384)
    assert result["bad"]["status"] == 422 and "dimension 1 must be 4" in result["bad"]["message"]


def test_v2_jobs_give_v2_responses(dev_stack: RunningStack) -> None:
    # GIVEN jobs whose inputs are v2 infer requests, for the light iris and the heavy minilm
    client = dev_stack.client()
    iris = {"id": "job-1", "inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 4],
                                       "data": ROWS.ravel().tolist()}]}
    minilm = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": TEXTS.tolist()}],
              "outputs": [{"name": "embeddings"}]}
    ids = []
    for model, request in (("iris", iris), ("minilm", minilm)):
        submitted = client.post("/v1/jobs", json={"model": model, "protocol": "v2", "inputs": request})
        assert submitted.status_code == 202, submitted.text
        ids.append(submitted.json()["job_id"])
    refused = client.post("/v1/jobs", json={"model": "iris", "protocol": "v2", "inputs": {"inputs": "no"}})
    binary = client.post("/v1/jobs", json={"model": "iris", "protocol": "v2", "inputs": {
        **iris, "parameters": {"binary_data_output": True}}})
    assert refused.status_code == 422 and binary.status_code == 422
    # WHEN they have run
    deadline, jobs = time.monotonic() + 90, {}
    while time.monotonic() < deadline and len(jobs) < 2:
        for job_id in ids:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed"):
                jobs[job_id] = job
        time.sleep(0.3)
    # THEN their results are infer responses
    iris_job, minilm_job = (jobs[i] for i in ids)
    assert iris_job["status"] == "succeeded", iris_job
    assert iris_job["result"]["id"] == "job-1" and iris_job["result"]["model_name"] == "iris"
    label = next(o for o in iris_job["result"]["outputs"] if o["name"] == "label")
    assert label["datatype"] == "INT64" and label["data"] == v1_predict(dev_stack, "iris", {
        "features": ROWS.tolist()})["label"]
    assert minilm_job["status"] == "succeeded", minilm_job
    (embeddings,) = minilm_job["result"]["outputs"]
    assert embeddings["name"] == "embeddings" and embeddings["shape"] == [3, 384]
    np.testing.assert_allclose(np.array(embeddings["data"]).reshape(3, 384),
                               v1_predict(dev_stack, "minilm", {"text": TEXTS.tolist()})["embeddings"], atol=1e-6)


def test_v1_takes_gzip_and_answers_compressed(dev_stack: RunningStack) -> None:
    # GIVEN a gzip predict body and a client that accepts gzip
    body = gzip.compress(json.dumps({"inputs": {"features": np.repeat(ROWS, 40, axis=0).tolist()}}).encode())
    with dev_stack.client() as c:
        response = c.post("/v1/models/iris/predict", content=body, headers={
            "content-encoding": "gzip", "content-type": "application/json", "accept-encoding": "gzip"})
        plain = c.post("/v1/models/iris/predict", json={"inputs": {"features": ROWS.tolist()}},
                       headers={"accept-encoding": "identity"})
        bomb = c.post("/v1/models/iris/predict", content=gzip.compress(b" " * 11_000_000),
                      headers={"content-encoding": "gzip", "content-type": "application/json"})
        unknown = c.post("/v1/models/iris/predict", content=body, headers={"content-encoding": "br"})
    # THEN the gateway decodes it and compresses the large answer; small or identity answers stay plain
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert len(response.json()["outputs"]["label"]) == 120
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert bomb.status_code == 413 and unknown.status_code == 415


def test_the_readme_triton_example_runs(dev_stack: RunningStack) -> None:
    # the README's tritonclient snippet, run as a user would against `make dev`
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "triton_client.py"), "--url",
                          dev_stack.url.removeprefix("http://") + "/prod", "--api-key", PRO_KEY],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "live: True" and lines[2] == "labels: [0, 2]"
    assert lines[3].startswith("embeddings: (2, 384) float32 similarity: 0.")

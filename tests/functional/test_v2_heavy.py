"""The heavy container with the Open Inference Protocol, as SageMaker's InvokeEndpoint carries it (the binary data
extension's header size in the content type): v2 and v1 requests stacked alike by the dynamic batcher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from inferstack.protocol.sagemaker import header_size, v2_content_type
from inferstack_infra.local.sagemaker import ModelServer
from tests.functional.test_heavy import direct, rows, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    s = start_server(tmp_path_factory.mktemp("heavy-v2"), max_batch_size=64, max_delay_ms=50)
    yield s
    s.stop()


def v2_binary(x: np.ndarray) -> tuple[bytes, str]:
    head = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    return head + x.tobytes(), v2_content_type(len(head))


def read_v2(response: httpx.Response) -> dict[str, np.ndarray]:
    size = header_size(response.headers["content-type"]) or len(response.content)
    head = json.loads(response.content[:size])
    out, offset = {}, size
    for o in head["outputs"]:
        if "data" in o:
            out[o["name"]] = np.array(o["data"], dtype=np.float32).reshape(o["shape"])
        else:
            n = o["parameters"]["binary_data_size"]
            out[o["name"]] = np.frombuffer(response.content[offset:offset + n], dtype="<f4").reshape(o["shape"])
            offset += n
    return out


def test_v2_and_v1_requests_are_batched_together(server: ModelServer) -> None:
    # GIVEN 48 concurrent requests, a third v1 JSON, a third v2 binary, a third v2 JSON
    before = httpx.get(f"{server.url}/stats").json()
    inputs = [np.array(rows(1 + i % 2, seed=100 + i), dtype=np.float32) for i in range(48)]

    client = httpx.Client(timeout=60)

    def send(i: int) -> dict[str, np.ndarray]:
        x = inputs[i]
        if i % 3 == 0:
            answer = client.post(f"{server.url}/invocations", json={"inputs": {"features": x.tolist()}})
            assert answer.status_code == 200, answer.text
            return {"probabilities": np.array(answer.json()["outputs"]["probabilities"])}
        if i % 3 == 1:
            body, content_type = v2_binary(x)
        else:
            body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": list(x.shape),
                                           "data": x.ravel().tolist()}]}).encode()
            content_type = v2_content_type(len(body))
        answer = client.post(f"{server.url}/invocations", content=body, headers={"content-type": content_type})
        assert answer.status_code == 200, answer.text
        return read_v2(answer)

    # WHEN they arrive together
    with client, ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(send, range(48)))
    after = httpx.get(f"{server.url}/stats").json()
    # THEN fewer than half as many inference calls as requests ran them, and each got its own rows
    assert after["requests"] - before["requests"] == 48
    assert after["inference_calls"] - before["inference_calls"] <= 48 // 2
    assert after["largest_batch_rows"] > 3
    for x, answer in zip(inputs, answers, strict=True):
        np.testing.assert_allclose(answer["probabilities"], direct(x.tolist())["probabilities"], rtol=1e-4,
                                   atol=1e-6)


def test_v2_errors_are_problems_sagemaker_passes_back(server: ModelServer, tmp_path: Path) -> None:
    x = np.zeros((1, 512), dtype=np.float32)
    body, content_type = v2_binary(x)
    short = httpx.post(f"{server.url}/invocations", content=body[:-4], headers={"content-type": content_type})
    wrong = httpx.post(f"{server.url}/invocations", content=json.dumps({"inputs": [{
        "name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}).encode(),
        headers={"content-type": v2_content_type(10_000)})
    assert short.status_code == 400 and short.json()["type"] == "urn:inferstack:problem:bad-binary-data"
    assert wrong.status_code == 400  # a header size past the body
    assert "Inference-Header-Content-Length" in wrong.json()["detail"]

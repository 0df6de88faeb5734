"""The heavy tier's container server over real HTTP, its dynamic batcher, and the SageMaker runtime path."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import pytest
from botocore.exceptions import ClientError

from inferstack.heavy.endpoint import EndpointPredictor
from inferstack.heavy.exceptions import EndpointError
from inferstack.manifest import Manifest, parse_manifest
from inferstack.observability import emf
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import LocalSageMaker, ModelServer
from inferstack_infra.packaging import stage_heavy_model
from inferstack_infra.paths import CONTAINER_DIR
from tests.conftest import ROOT
from tests.emf import check_emf, emf_documents, metric_values
from tests.together import post_together

MLP = ROOT / "models" / "mlp.onnx"


def heavy_manifest(**batching: Any) -> Manifest:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    return parse_manifest({"name": "heavytest", "models": [{
        "name": "mlp", "path": str(MLP), "tier": "heavy", "instance_type": "ml.g5.xlarge",
        "batching": batching or {"max_batch_size": 32, "max_delay_ms": 20}}]}, root=ROOT)


def start_server(tmp: Path, log: Callable[[str], None] = lambda line: None, **batching: Any) -> ModelServer:
    manifest = heavy_manifest(**batching)
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest), tmp / "model")
    server = ModelServer("mlp", model_dir, log=log)
    server.start()
    return server


#: The module's server's log lines.
LOG: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    s = start_server(tmp_path_factory.mktemp("heavy"), log=LOG.append)
    yield s
    s.stop()


def rows(n: int, seed: int) -> list[list[float]]:
    return np.random.default_rng(seed).random((n, 512), dtype=np.float32).round(4).tolist()


def direct(x: list[list[float]]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(MLP))
    logits, proba = session.run(None, {"features": np.array(x, dtype=np.float32)})
    return {"logits": logits, "probabilities": proba}


def test_ping_and_invocations(server: ModelServer) -> None:
    assert httpx.get(f"{server.url}/ping").status_code == 200
    x = rows(3, 0)
    response = httpx.post(f"{server.url}/invocations", json={"inputs": {"features": x}})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "mlp" and len(body["version"]) == 12
    np.testing.assert_allclose(body["outputs"]["logits"], direct(x)["logits"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("payload", "status", "kind"), [
    (b'{"inputs": [[1, 2', 400, "malformed-json"),
    (b'{"inputs": [[1, 2, 3]]}', 422, "invalid-input"),
    (b'{"inputs": [["a"]]}', 422, "invalid-input"),
    (b'{"rows": []}', 422, "invalid-request"),
])
def test_bad_input_is_a_4xx_problem(server: ModelServer, payload: bytes, status: int, kind: str) -> None:
    response = httpx.post(f"{server.url}/invocations", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:inferstack:problem:{kind}"


def test_64_concurrent_requests_are_batched_and_each_gets_its_own_rows(server: ModelServer) -> None:
    before = httpx.get(f"{server.url}/stats").json()
    inputs = [rows(1 + i % 3, seed=i) for i in range(64)]
    # (arriving together, whatever the machine's load: tests/together.py)
    answers = post_together(server, [{"inputs": x} for x in inputs])
    after = httpx.get(f"{server.url}/stats").json()
    calls = after["inference_calls"] - before["inference_calls"]
    assert after["requests"] - before["requests"] == 64
    assert calls <= 64 // 4, f"{calls} inference calls for 64 requests"  # far fewer than one per request
    assert after["largest_batch_rows"] > 3
    for x, answer in zip(inputs, answers, strict=True):
        assert answer.status_code == 200
        expected = direct(x)
        np.testing.assert_allclose(answer.json()["outputs"]["probabilities"], expected["probabilities"],
                                   rtol=1e-4, atol=1e-6)


def test_the_container_logs_its_metrics_as_emf(server: ModelServer) -> None:
    # GIVEN the requests of the tests above (bad ones, and 64 at once, batched)
    # WHEN its metrics are flushed (every second)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(metric_values(emf_documents("\n".join(LOG)), emf.REQUESTS)) < 69:
        time.sleep(0.2)
    docs = emf_documents("\n".join(LOG))
    # THEN its log carries valid EMF documents for its model: requests by status class, the batches' sizes
    # and the queue behind them, and the bad inputs by kind
    for doc in docs:
        check_emf(doc)
        assert doc["model"] == "mlp"
    assert sum(metric_values(docs, emf.STATUS_2XX)) >= 65 and sum(metric_values(docs, emf.STATUS_4XX)) == 4
    sizes = metric_values(docs, emf.BATCH_SIZE)
    # every row ran, counted once (whether a batch held one request or several: the test above checks the batching)
    assert sum(sizes) == 3 + sum(1 + i % 3 for i in range(64))
    assert len(metric_values(docs, emf.QUEUE_DEPTH)) == len(sizes)
    # AND the sums the deployment's metric filters read (SageMaker's log is not EMF-extracted) agree
    summed = [d for d in docs if "BatchSizeSum" in d]
    assert sum(d["BatchSizeSum"] for d in summed) == sum(sizes) and sum(d["BatchSizeCount"] for d in summed) == len(
        sizes) and max(d["BatchSizeMax"] for d in summed) == max(sizes)
    assert len(metric_values(docs, emf.INFERENCE_LATENCY)) == len(sizes)
    kinds = {d["kind"]: sum(d[emf.VALIDATION_FAILURES]) for d in docs if "kind" in d}
    assert kinds == {"malformed-json": 1, "invalid-input": 2, "invalid-request": 1}


def test_sigterm_finishes_in_flight_requests(tmp_path: Path) -> None:
    # GIVEN a request in flight: its headers sent, its body not yet all there
    slow = start_server(tmp_path)
    assert slow.proc is not None
    body = json.dumps({"inputs": rows(1, 1)}).encode()
    with socket.create_connection(("127.0.0.1", slow.port), timeout=30) as conn:
        conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)
        # WHEN the server gets SIGTERM, and the rest of the body arrives after it
        slow.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.sendall(body[10:])
        answer = conn.makefile("rb").readline()
    # THEN the request still gets its answer and the server exits cleanly
    assert answer.startswith(b"HTTP/1.1 200"), answer
    # (uvicorn re-raises SIGTERM once its graceful shutdown is done, so the exit status is the signal's)
    assert slow.proc.wait(30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{slow.url}/ping", timeout=2)


@pytest.fixture(scope="module")
def local_sagemaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSageMaker]:
    manifest = heavy_manifest()
    sm = LocalSageMaker(manifest, build_catalog(manifest, bundled=False), tmp_path_factory.mktemp("sm"),
                        log=lambda part, line: None)
    sm.start()
    yield sm
    sm.stop()


def runtime_client(sm: LocalSageMaker) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=sm.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_boto3_invoke_endpoint_against_the_local_server(local_sagemaker: LocalSageMaker) -> None:
    client = runtime_client(local_sagemaker)
    x = rows(2, 5)
    response = client.invoke_endpoint(EndpointName="heavytest-mlp", Body=json.dumps({"inputs": x}),
                                      ContentType="application/json")
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = json.loads(response["Body"].read())
    np.testing.assert_allclose(body["outputs"]["logits"], direct(x)["logits"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="heavytest-mlp", Body=b'{"inputs": [[1]]}', ContentType="application/json")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 422
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_endpoint_predictor_maps_sagemaker_errors(local_sagemaker: LocalSageMaker) -> None:
    manifest = heavy_manifest()
    entry = build_catalog(manifest).models[0]
    predictor = EndpointPredictor(entry, "heavytest-mlp", client=runtime_client(local_sagemaker))
    assert len(predictor.predict(rows(2, 9))["probabilities"]) == 2
    # the container names its version in SageMaker's custom attributes; the proxy reports it
    stale = EndpointPredictor(entry.model_copy(update={"version": "stale"}), "heavytest-mlp",
                              client=runtime_client(local_sagemaker))
    outputs, version = stale.predict_versioned(rows(1, 3))
    assert version == entry.version and len(outputs["probabilities"]) == 1
    with pytest.raises(EndpointError) as info:
        predictor.predict([[1, 2]])
    assert info.value.status == 422 and info.value.is_client_error
    assert info.value.extensions["errors"][0]["input"] == "inputs.features"
    missing = EndpointPredictor(entry, "heavytest-gone", client=runtime_client(local_sagemaker))
    with pytest.raises(EndpointError) as info:
        missing.predict(rows(1, 1))
    assert info.value.status == 502 and not info.value.is_client_error
    down = EndpointPredictor(entry, "x", client=boto3.client(
        "sagemaker-runtime", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing"))
    with pytest.raises(EndpointError) as info:
        down.predict(rows(1, 1))
    assert info.value.status == 503 and info.value.retry_after == 5


def test_container_server_needs_only_its_own_requirements() -> None:
    # GIVEN the container's requirements.txt (no FastAPI, Mangum, boto3 or httpx in the image) WHEN the server module
    # and its app factory are imported THEN none of those is loaded
    import subprocess
    import sys

    script = ("import sys, inferstack.heavy.server\n"
              "print(sorted(m for m in ('fastapi', 'mangum', 'boto3', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    required = (CONTAINER_DIR / "requirements.txt").read_text()
    assert "onnxruntime-gpu==" in required and "fastapi" not in required

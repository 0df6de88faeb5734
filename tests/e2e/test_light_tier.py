"""The example deployment under `inferstack dev`, over real HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_MANIFEST, ROOT
from tests.e2e.conftest import FREE_KEY, RunningStack, child_processes, free_port

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"


def test_health_needs_no_key(dev_stack: RunningStack) -> None:
    response = dev_stack.client(key=None).get("/v1/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_predict_n_rows_in_n_rows_out(dev_stack: RunningStack) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.9, 3.0, 1.4, 0.2]]
    response = dev_stack.client().post("/v1/models/iris/predict", json={"inputs": {"features": rows}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "iris"
    assert body["outputs"]["label"] == [0, 2, 1, 0]
    assert len(body["outputs"]["probabilities"]) == 4
    assert all(abs(sum(p) - 1) < 1e-5 for p in body["outputs"]["probabilities"])
    assert response.headers["x-amzn-requestid"]


def test_models_listing(dev_stack: RunningStack) -> None:
    response = dev_stack.client().get("/v1/models")
    assert response.status_code == 200
    assert [m["name"] for m in response.json()["models"]] == ["iris", "minilm"]
    assert dev_stack.client().get("/v1/models/iris").json()["inputs"][0]["shape"] == ["N", 4]


def test_no_key_is_403(dev_stack: RunningStack) -> None:
    response = dev_stack.client(key=None).post("/v1/models/iris/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "x-api-key" in response.json()["detail"]


def test_unknown_key_is_403(dev_stack: RunningStack) -> None:
    assert dev_stack.client(key="not-a-real-key").get("/v1/models").status_code == 403


def test_unknown_route_is_403_as_on_api_gateway(dev_stack: RunningStack) -> None:
    response = dev_stack.client().get("/v1/nothing-here")
    assert response.status_code == 403 and response.json()["type"] == "urn:inferstack:problem:forbidden"


def test_unknown_model_is_404(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/nope/predict", json={"inputs": [[1, 2, 3, 4]]})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert dev_stack.client().get("/v1/models/nope").status_code == 404


def test_malformed_json_is_400(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/iris/predict", content=b'{"inputs": [[1, 2',
                                       headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON


def test_body_without_inputs_is_400_from_the_gateway_validator(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/iris/predict", json={"features": [[1, 2, 3, 4]]})
    assert response.status_code == 400
    assert response.json()["type"] == "urn:inferstack:problem:bad-request-body"
    assert "inputs" in response.json()["detail"]


def test_wrong_shape_is_422(dev_stack: RunningStack) -> None:
    response = dev_stack.client().post("/v1/models/iris/predict", json={"inputs": {"features": [[1, 2, 3]]}})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["input"] == "inputs.features" and error["expected"] == "[N, 4]" and error["given"] == "[1, 3]"


def test_over_the_plan_throttle_is_429_with_retry_after(dev_stack: RunningStack) -> None:
    # GIVEN a key on the "free" plan (burst 10, 5 requests/s) WHEN 40 requests arrive at once
    client = dev_stack.client(key=FREE_KEY)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.get("/v1/models"), range(40)))
    # THEN some pass, the rest are throttled with problem+json and Retry-After
    codes = [r.status_code for r in responses]
    assert 200 in codes and 429 in codes, codes
    assert set(codes) <= {200, 429}
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.headers["retry-after"] == "1"
    assert throttled.headers["content-type"] == PROBLEM_JSON
    assert throttled.json()["type"] == "urn:inferstack:problem:throttled"


def test_dev_refuses_a_busy_port(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(EXAMPLE_MANIFEST),
                              "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=False)
    assert out.returncode == 1
    assert f"port {port}" in out.stderr and "already in use" in out.stderr


def test_dev_rejects_an_invalid_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nname = "x"\npath = "nope.onnx"\ntier = "light"\nmemory = 5\n')
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "models[0] (x).memory: unknown key" in out.stderr


def test_api_key_plan_must_exist(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(EXAMPLE_MANIFEST),
                          "--port", str(free_port()), "--api-key", "abcdefgh12:gold"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2 and "unknown usage plan(s) gold" in out.stderr


def test_large_batch(dev_stack: RunningStack) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2]] * 5000
    response = dev_stack.client().post("/v1/models/iris/predict", json={"inputs": rows})
    assert response.status_code == 200 and len(response.json()["outputs"]["label"]) == 5000


def test_ctrl_c_stops_every_part(tmp_path: Path) -> None:
    # GIVEN a running stack (gateway, function runtimes, heavy server, emulator) WHEN it gets Ctrl-C (SIGINT)
    from tests.e2e.conftest import start_dev

    stack = start_dev(tmp_path / "dev.log")
    children = child_processes(stack.proc.pid, "python")
    assert len(children) >= 5  # a runtime per function and the heavy model's server
    stack.proc.send_signal(signal.SIGINT)
    # THEN it exits cleanly and leaves no process behind
    assert stack.proc.wait(30) == 0
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists() and
            "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()] == []
    log = stack.log.read_text()
    assert "gateway |" in log and "aws |" in log and "sagemaker |" in log  # one stream, named parts


def test_bodies_over_the_limits_are_413(dev_stack: RunningStack) -> None:
    client = dev_stack.client()
    # over API Gateway's 10 MB: refused by the gateway itself
    huge = client.post("/v1/models/iris/predict", content=b"[" + b"1," * (5_300_000) + b"1]",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["type"] == "urn:inferstack:problem:payload-too-large"
    # over the manifest's api.max_body_kb (4 MB) but under 10 MB: refused by the function, same problem
    rows = [[5.1, 3.5, 1.4, 0.2]] * 300_000  # 5.4 MB of compact JSON
    big = client.post("/v1/models/iris/predict", json={"inputs": rows})
    assert big.status_code == 413 and big.json()["type"] == "urn:inferstack:problem:payload-too-large"

"""A hostile client against `inferstack dev`, over real HTTP: each attack gets its exact 4xx with a problem body,
costs the processes that receive it (the gateway, the predict function's runtime) at most 10x its size plus
20 MB of peak memory, and the stack serves a valid request right after. Jobs with bad inputs end failed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PRO_KEY, RunningStack, child_processes, eventually, free_port, start_dev, stop_dev
from tests.hostile import MB, Attack, PeakMemory, attacks

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
ATTACKS = attacks(4)
VALID = {"inputs": {"features": [[5.1, 3.5, 1.4, 0.2]]}}
#: The gateway answers malformed JSON itself on the routes with a body schema, as API Gateway's validator does.
GATEWAY_MALFORMED = {"nested 200,000 deep", "integer of 5,000 digits", "invalid UTF-8", "not JSON"}


def _runtime(stack: RunningStack, name: str) -> int:
    (pid,) = child_processes(stack.proc.pid, f"--name {name}")
    return pid


def _post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    for _ in range(20):  # the pro plan's burst is generous; a 429 here is the test's own pace
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        if response.status_code != 429:
            return response
        time.sleep(1)
    return response


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_predict_attack_gets_its_4xx_in_bounded_memory(dev_stack: RunningStack, attack: Attack) -> None:
    runtime = _runtime(dev_stack, "predict-iris")
    with dev_stack.client(PRO_KEY) as client, PeakMemory(dev_stack.proc.pid) as gateway, \
            PeakMemory(runtime) as function:
        response = _post(client, "/v1/models/iris/predict", attack.body)
    assert response.status_code == attack.status, response.text[:300]
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == attack.status
    kind = "bad-request-body" if attack.name in GATEWAY_MALFORMED else attack.kind
    assert problem["type"] == f"urn:inferstack:problem:{kind}"
    assert len(response.content) < 8000
    print(f"\ne2e {attack.name}: {len(attack.body)} B -> {response.status_code}; peak gateway "
          f"+{gateway.grew / MB:.1f} MB, function +{function.grew / MB:.1f} MB")
    assert function.grew <= attack.budget(), f"the function took {function.grew / MB:.0f} MB"
    assert gateway.grew <= attack.budget(), f"the gateway took {gateway.grew / MB:.0f} MB"
    with dev_stack.client(PRO_KEY) as client:
        assert client.post("/v1/models/iris/predict", json=VALID).status_code == 200


MALFORMED = [a for a in ATTACKS if a.status == 400]


@pytest.mark.parametrize("attack", MALFORMED, ids=[a.name for a in MALFORMED])
def test_v2_infer_and_job_submission_answer_malformed_json_with_400(dev_stack: RunningStack, attack: Attack) -> None:
    with dev_stack.client(PRO_KEY) as client:
        infer = _post(client, "/v2/models/iris/infer", attack.body)
        assert infer.status_code == 400 and set(infer.json()) == {"error"}
        job = _post(client, "/v1/jobs", attack.body.replace(b'{"inputs": ', b'{"model": "iris", "inputs": ', 1))
        assert job.status_code == 400 and job.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize("path, method", [
    ("/v1/models/%2569ris/predict", "POST"),   # decoded once: the model `%69ris`, which does not exist
    ("/v1/models/%2569ris", "GET"),
    ("/v1/jobs/" + "x" * 3000, "GET"),           # not a job ID: no store lookup
    ("/v1/jobs/..%2F..%2Fetc%2Fpasswd", "GET"),
])
def test_paths_that_name_nothing_are_404(dev_stack: RunningStack, path: str, method: str) -> None:
    with dev_stack.client(PRO_KEY) as client:
        response = client.request(method, path, json=VALID if method == "POST" else None)
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"] == PROBLEM_JSON


def test_an_encoded_crlf_in_a_path_forges_no_log_line(dev_stack: RunningStack) -> None:
    with dev_stack.client(PRO_KEY) as client:
        response = client.get("/v1/jobs/x%0D%0A%20%20%20%20%20%20%20%20%20gateway%20|%20GET%20%2Fv1%2Fforged%20200")
    assert response.status_code == 404

    def logged() -> list[str]:
        return [line for line in dev_stack.log.read_text().splitlines() if "/v1/forged" in line]

    (line,) = eventually(logged, timeout_s=10)
    assert "x\\r\\n" in line and not line.lstrip().startswith("gateway | GET /v1/forged")


def test_jobs_with_bad_inputs_end_failed_and_a_valid_job_succeeds(dev_stack: RunningStack) -> None:
    bad_bodies: list[dict[str, Any]] = [
        {"model": "iris", "inputs": [["x" * 1000] * 4] * 20},
        {"model": "iris", "inputs": {"features": [[1e999, 1, 1, 1]]}},
        {"model": "iris", "inputs": {"features": [[1, 2, 3]]}},
    ]
    with dev_stack.client(PRO_KEY) as client:
        ids = []
        for body in bad_bodies:
            submitted = client.post("/v1/jobs", content=json.dumps(body).replace("Infinity", "1e999"))
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["job_id"])
        good = client.post("/v1/jobs", json={"model": "iris", **VALID}).json()["job_id"]

        def finished(job_id: str) -> dict[str, Any] | None:
            view: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            return view if view["status"] in ("succeeded", "failed") else None

        for job_id in ids:
            view = eventually(lambda j=job_id: finished(j), timeout_s=60)
            assert view["status"] == "failed" and view["error"]["type"] == "invalid-input"
            assert view["attempts"] == 1  # at once, no retry
        assert eventually(lambda: finished(good), timeout_s=60)["status"] == "succeeded"


def test_loopback_webhooks_reach_receivers_but_never_the_stack_itself(tmp_path: Path) -> None:
    # GIVEN a stack that lets webhooks go to loopback receivers
    stack = start_dev(tmp_path / "dev.log", "--allow-loopback-webhooks", "--api-key", f"{PRO_KEY}:pro")
    try:
        moto = re.search(r"moto server at (http://127\.0\.0\.1:\d+)", stack.log.read_text())
        assert moto is not None
        ports = [int(u.rsplit(":", 1)[1]) for u in re.findall(r"http://127\.0\.0\.1:\d+", stack.log.read_text())]
        with stack.client(PRO_KEY) as client:
            def submit(url: str) -> httpx.Response:
                return client.post("/v1/jobs", json={"model": "iris", **VALID, "webhook": {"url": url}})

            # THEN the emulator's reset URL, the gateway and every port the stack announced are refused
            for url in (f"{moto.group(1)}/moto-api/reset", f"{stack.url}/v1/health",
                        *(f"http://127.0.0.1:{p}/" for p in ports)):
                refused = submit(url)
                assert refused.status_code == 422, (url, refused.text)
                assert "local stack itself" in refused.json()["detail"]
            # AND a receiver on another loopback port is accepted
            assert submit(f"http://127.0.0.1:{free_port()}/hooks").status_code == 202
        # AND the emulator still holds its state
        assert httpx.get(f"{moto.group(1)}/moto-api/data.json", timeout=10).status_code == 200
    finally:
        stop_dev(stack)


@pytest.mark.parametrize("attack", MALFORMED, ids=[a.name for a in MALFORMED])
def test_the_heavy_model_answers_malformed_json_with_400(dev_stack: RunningStack, attack: Attack) -> None:
    # the heavy tier's predict function (and behind it SageMaker's stand-in and the container)
    with dev_stack.client(PRO_KEY) as client:
        predict = _post(client, "/v1/models/minilm/predict", attack.body)
        assert predict.status_code == 400 and predict.headers["content-type"] == PROBLEM_JSON, predict.text[:300]
        infer = _post(client, "/v2/models/minilm/infer", attack.body)
        assert infer.status_code == 400 and set(infer.json()) == {"error"}, infer.text[:300]
        assert client.post("/v1/models/minilm/predict", json={"inputs": {"text": ["still serving"]}}
                           ).status_code == 200

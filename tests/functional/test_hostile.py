"""Hostile bodies at every front door: the light predict function and the API function (real API Gateway events,
bodies base64-encoded as the API's binary media type `*/*` sends them) and the heavy container over HTTP, whose
peak memory per rejected body is measured. Each must answer the exact 4xx with a problem body, in bounded
memory, and keep serving."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferstack import env
from inferstack_infra.local.sagemaker import ModelServer
from tests.conftest import load_event
from tests.functional.conftest import Handler, _import_fresh, _invoke
from tests.functional.test_heavy import rows, start_server
from tests.hostile import MB, Attack, PeakMemory, attacks

IRIS_ATTACKS = attacks(4)
MALFORMED = [a for a in IRIS_ATTACKS if a.status == 400]


def _event(path: str, body: bytes) -> dict[str, Any]:
    event = load_event("apiGatewayProxyEvent_predict.json")
    event.update(path=path, resource=path, body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return event


def _problem(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["content-type"] == "application/problem+json"
    problem: dict[str, Any] = json.loads(response["body"])
    assert problem["status"] == response["statusCode"]
    return problem


@pytest.fixture(scope="module")
def predict_4mb(catalog_file: Path) -> Handler:
    """The iris predict function under the example manifest's body limit (4 MB)."""
    module = _import_fresh("inferstack.functions.predict.handler", {
        env.CATALOG_PATH: str(catalog_file), env.MODEL_NAME: "iris", env.MAX_BODY_BYTES: str(4 * MB)})
    return _invoke(module, "predict-iris")


@pytest.mark.parametrize("attack", IRIS_ATTACKS, ids=[a.name for a in IRIS_ATTACKS])
def test_light_predict_function_answers_each_attack_with_its_4xx(predict_4mb: Handler, attack: Attack) -> None:
    response = predict_4mb(_event("/v1/models/iris/predict", attack.body))
    assert response["statusCode"] == attack.status
    problem = _problem(response)
    assert problem["type"] == f"urn:inferstack:problem:{attack.kind}"
    assert len(response["body"]) < 8000  # a million bad names get a short answer
    ok = predict_4mb(_event("/v1/models/iris/predict", b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'))
    assert ok["statusCode"] == 200


@pytest.mark.parametrize("attack", MALFORMED, ids=[a.name for a in MALFORMED])
def test_v2_infer_answers_malformed_json_with_400(predict_4mb: Handler, attack: Attack) -> None:
    response = predict_4mb(_event("/v2/models/iris/infer", attack.body))
    assert response["statusCode"] == 400
    assert set(json.loads(response["body"])) == {"error"}


@pytest.mark.parametrize("attack", MALFORMED, ids=[a.name for a in MALFORMED])
def test_api_function_answers_malformed_job_bodies_with_400(api_handler: Handler, attack: Attack) -> None:
    body = attack.body.replace(b'{"inputs": ', b'{"model": "iris", "inputs": ', 1)
    response = api_handler(_event("/v1/jobs", body))
    assert response["statusCode"] == 400
    assert _problem(response)["type"] == "urn:inferstack:problem:malformed-json"


def test_api_function_answers_a_body_of_100000_unknown_fields_briefly(api_handler: Handler) -> None:
    body = json.dumps({"model": "iris", "inputs": [[1.5] * 4], **{f"f{i}": 1 for i in range(100_000)}}).encode()
    response = api_handler(_event("/v1/jobs", body))
    assert response["statusCode"] == 422 and len(response["body"]) < 4000
    assert "100000 unknown fields" in _problem(response)["detail"]


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    s = start_server(tmp_path_factory.mktemp("heavy-hostile"))
    yield s
    s.stop()


HEAVY_ATTACKS = attacks(512)


@pytest.mark.parametrize("attack", HEAVY_ATTACKS, ids=[a.name for a in HEAVY_ATTACKS])
def test_heavy_container_answers_each_attack_in_bounded_memory(heavy: ModelServer, attack: Attack) -> None:
    assert heavy.proc is not None
    with httpx.Client(base_url=heavy.url, timeout=60) as client, PeakMemory(heavy.proc.pid) as peak:
        response = client.post("/invocations", content=attack.body, headers={"content-type": "application/json"})
    assert response.status_code == attack.status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:inferstack:problem:{attack.kind}"
    assert peak.grew <= attack.budget(), f"{attack.name}: {len(attack.body)} bytes cost {peak.grew / MB:.0f} MB"
    print(f"heavy {attack.name}: {len(attack.body)} B -> {attack.status}, peak +{peak.grew / MB:.1f} MB")
    ok = httpx.post(f"{heavy.url}/invocations", json={"inputs": {"features": rows(2, 0)}})
    assert ok.status_code == 200

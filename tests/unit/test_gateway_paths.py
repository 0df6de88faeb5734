"""The local gateway treats paths as API Gateway does: decoded once, routed on the raw path; what a client put in
a path cannot forge a log line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inferstack.manifest import load_manifest
from inferstack.topology import routes
from inferstack_infra.local.gateway import Gateway
from inferstack_infra.local.paths import printable
from tests.conftest import EXAMPLE_MANIFEST

KEY = "unit-test-key"


class Recorder:
    """An invoker that records which function got which event, and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
        self.calls.append((function, event))
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}, False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # as uvicorn serves the gateway


@pytest.fixture
def gateway() -> tuple[Gateway, Recorder, list[str]]:
    manifest = load_manifest(EXAMPLE_MANIFEST)
    recorder, lines = Recorder(), []
    plan = manifest.api.plans[-1].name
    return Gateway(manifest, routes(manifest), recorder, {KEY: plan}, log=lines.append), recorder, lines


async def _send(gateway: Gateway, method: str, url: str, body: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.request(method, url, content=body, headers={"x-api-key": KEY})


@pytest.mark.anyio
@pytest.mark.parametrize("method, url, function, name", [
    ("POST", "/v1/models/%2569ris/predict", "api", "%69ris"),   # once: `%69ris`, not iris's own function
    ("GET", "/v1/models/%2569ris", "api", "%69ris"),
    ("POST", "/v1/models/%69ris/predict", "predict-iris", None),  # `%69` is `i`: iris's route, as on AWS
    ("GET", "/v1/models/a%2Fb", "api", "a/b"),                      # an encoded slash stays in its segment
])
async def test_paths_are_decoded_once(gateway: tuple[Gateway, Recorder, list[str]], method: str, url: str,
                                      function: str, name: str | None) -> None:
    gw, recorder, _ = gateway
    response = await _send(gw, method, url, b'{"inputs": [[1, 2, 3, 4]]}' if method == "POST" else b"")
    assert response.status_code == 200
    ((called, event),) = recorder.calls
    assert called == function
    assert event["path"] == url  # raw, as API Gateway sends it (Mangum decodes it once)
    if name is not None:
        assert event["pathParameters"] == {"name": name}


@pytest.mark.anyio
async def test_control_characters_in_a_path_are_escaped_in_the_log(gateway: tuple[Gateway, Recorder, list[str]]
                                                                  ) -> None:
    gw, _, lines = gateway
    await _send(gw, "GET", "/v1/jobs/x%0d%0aGET%20/v1/forged%20200%201.0ms")
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0]
    assert "x\\r\\nGET /v1/forged" in lines[0]


def test_printable_escapes_every_control_character() -> None:
    assert printable("a\r\nb\x1b[31m\x00\x7f\x85é") == "a\\r\\nb\\x1b[31m\\x00\\x7f\\x85é"


@pytest.mark.anyio
async def test_encoded_slashes_stay_in_a_job_id(gateway: tuple[Gateway, Recorder, list[str]]) -> None:
    gw, recorder, _ = gateway
    response = await _send(gw, "GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd")
    assert response.status_code == 200
    ((function, event),) = recorder.calls
    assert function == "api" and event["pathParameters"] == {"job_id": "../../etc/passwd"}

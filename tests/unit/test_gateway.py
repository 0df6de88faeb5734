from __future__ import annotations

import base64
import datetime as dt

from inferstack.manifest import Quota, Throttle
from inferstack.topology import Route
from inferstack_infra.local.gateway import QuotaCounter, TokenBucket, build_event
from inferstack_infra.local.paths import compile_routes, match_route

ROUTES = compile_routes([
    Route("GET", "/v1/models/{name}", "api", params=("name",)),
    Route("POST", "/v1/models/{name}/predict", "api", params=("name",)),
    Route("GET", "/v1/models/iris", "api"),
    Route("POST", "/v1/models/iris/predict", "predict-iris"),
])


def test_static_path_wins_over_parameter() -> None:
    route, params = match_route(ROUTES, "POST", "/v1/models/iris/predict") or (None, None)
    assert route is not None and route.function == "predict-iris" and params == {}


def test_parameter_route_catches_other_names() -> None:
    route, params = match_route(ROUTES, "POST", "/v1/models/other%20x/predict") or (None, None)
    assert route is not None and route.function == "api" and params == {"name": "other x"}


def test_missing_method_on_matched_resource_is_no_route() -> None:
    # API Gateway answers 403 MISSING_AUTHENTICATION_TOKEN; the gateway maps None to it
    assert match_route(ROUTES, "DELETE", "/v1/models/iris") is None
    assert match_route(ROUTES, "GET", "/v2/anything") is None


def test_token_bucket_allows_burst_then_refuses() -> None:
    bucket = TokenBucket(Throttle(rate=0.001, burst=3))
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]


def test_token_bucket_refills_at_rate() -> None:
    bucket = TokenBucket(Throttle(rate=10, burst=1))
    assert bucket.take()
    assert not bucket.take()
    bucket.stamp -= 0.2  # 0.2 s later: two tokens' worth, capped at the burst of 1
    assert bucket.take()
    assert not bucket.take()


def test_quota_resets_each_period() -> None:
    counter = QuotaCounter(Quota(limit=2, period="DAY"))
    assert [counter.take() for _ in range(3)] == [True, True, False]
    counter.window = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # a past day
    assert counter.take()


def test_event_carries_what_handlers_read() -> None:
    route = Route("POST", "/v1/models/{name}/predict", "api", params=("name",))
    event = build_event(route=route, params={"name": "iris"}, method="POST", path="/v1/models/iris/predict",
                        query="a=1&a=2&b=3", headers=[("X-Thing", "1"), ("X-Thing", "2"), ("user-agent", "ua")],
                        body=b"\xff\x00", source_ip="10.1.2.3", api_key=None, request_id="rid")
    assert event["resource"] == "/v1/models/{name}/predict"
    assert event["pathParameters"] == {"name": "iris"}
    assert event["queryStringParameters"] == {"a": "2", "b": "3"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["3"]}
    assert event["multiValueHeaders"]["X-Thing"] == ["1", "2"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    ctx = event["requestContext"]
    assert ctx["requestId"] == "rid" and ctx["stage"] == "prod" and ctx["identity"]["sourceIp"] == "10.1.2.3"


def test_load_inputs_follow_the_model_signature() -> None:
    from inferstack_infra.load import example_inputs

    info = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["N", 3, None]},
                       {"name": "ids", "dtype": "int64", "shape": ["N", 2]}]}
    inputs = example_inputs(info, rows=2)
    assert len(inputs["x"]) == 2 and len(inputs["x"][0]) == 3 and len(inputs["x"][0][0]) == 1
    assert all(isinstance(v, int) for row in inputs["ids"] for v in row)


def test_integration_timeout_is_a_504_problem() -> None:
    import asyncio
    import json
    from typing import Any

    from inferstack.manifest import parse_manifest
    from inferstack_infra.local.gateway import Gateway
    from tests.conftest import ROOT

    class SlowFunction:
        async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
            await asyncio.wait_for(asyncio.sleep(5), timeout_s)  # as LocalFunctions bounds a slow function
            return {}, False

    manifest = parse_manifest({"models": [{"name": "m", "path": "x.onnx", "tier": "light"}]}, root=ROOT,
                              check_files=False)
    gateway = Gateway(manifest, [Route("GET", "/v1/health", "api", api_key_required=False)], SlowFunction(), {},
                      log=lambda _: None, integration_timeout_s=0.05)

    async def call() -> tuple[int, list[tuple[str, str]], bytes]:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "GET", "path": "/v1/health", "headers": [], "query_string": b""}
        return await gateway.handle(scope, receive)

    status, headers, body = asyncio.run(call())
    assert status == 504 and ("Content-Type", "application/problem+json") in headers
    assert json.loads(body)["type"] == "urn:inferstack:problem:gateway-timeout"

"""The Open Inference Protocol in the synthesized template: /v2 routed with the keys, plans and throttles of
/v1, binary media types and response compression on the REST API."""

from __future__ import annotations

import json
from typing import Any

from inferstack.protocol.events import BINARY_MEDIA_TYPES, MIN_COMPRESSION_BYTES
from tests.infra.conftest import Synthesized


def _resources(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def _paths(s: Synthesized) -> dict[str, str]:
    """Each API resource's full path, from the PathPart/ParentId chain."""
    raw = _resources(s, "AWS::ApiGateway::Resource")

    def full(rid: str) -> str:
        props = raw[rid]["Properties"]
        parent = props["ParentId"]
        prefix = full(parent["Ref"]) if isinstance(parent, dict) and "Ref" in parent else ""
        return f"{prefix}/{props['PathPart']}"

    return {rid: full(rid) for rid in raw}


def _methods(s: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    paths = _paths(s)
    return {(paths[m["Properties"]["ResourceId"]["Ref"]], m["Properties"]["HttpMethod"]): m["Properties"]
            for m in _resources(s, "AWS::ApiGateway::Method").values()
            if "Ref" in m["Properties"]["ResourceId"]}


def test_binary_media_types_and_compression(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::ApiGateway::RestApi", {
        "BinaryMediaTypes": list(BINARY_MEDIA_TYPES), "MinimumCompressionSize": MIN_COMPRESSION_BYTES})
    assert BINARY_MEDIA_TYPES == ("*/*",) and MIN_COMPRESSION_BYTES == 1024


def test_v2_routes_keys_and_model_functions(example: Synthesized) -> None:
    methods = _methods(example)
    v2 = {k: v for k, v in methods.items() if k[0].startswith("/v2")}
    # the health checks are open; everything else needs a key, as on /v1
    assert {k for k, v in v2.items() if not v.get("ApiKeyRequired")} == {("/v2/health/live", "GET"),
                                                                        ("/v2/health/ready", "GET")}
    for model in ("iris", "minilm"):
        for path in (f"/v2/models/{model}/infer", f"/v2/models/{model}/versions/{{version}}/infer"):
            integration = json.dumps(v2[(path, "POST")]["Integration"]["Uri"])
            v1 = json.dumps(methods[(f"/v1/models/{model}/predict", "POST")]["Integration"]["Uri"])
            assert integration == v1  # the model's own function (its live alias), as /v1 predict
            assert "RequestValidatorId" not in v2[(path, "POST")]  # binary bodies: the function checks them
        assert (f"/v2/models/{model}", "GET") in v2 and (f"/v2/models/{model}/ready", "GET") in v2
    api = json.dumps(methods[("/v1/models", "GET")]["Integration"]["Uri"])
    for key in (("/v2", "GET"), ("/v2/models/{name}", "GET"), ("/v2/models/{name}/infer", "POST"),
                ("/v2/models/iris/versions/{version}", "GET")):
        assert json.dumps(v2[key]["Integration"]["Uri"]) == api


def test_v2_infer_has_the_models_throttle(example: Synthesized) -> None:
    (stage,) = _resources(example, "AWS::ApiGateway::Stage").values()
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["Properties"]["MethodSettings"]}
    for path in ("/~1v2~1models~1iris~1infer", "/~1v2~1models~1iris~1versions~1{version}~1infer"):
        assert settings[(path, "POST")]["ThrottlingRateLimit"] == 100
        assert settings[(path, "POST")]["ThrottlingBurstLimit"] == 200

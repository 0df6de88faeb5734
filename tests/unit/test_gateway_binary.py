"""The local gateway's body handling, as API Gateway's with the CDK app's settings: request decoding, binary
media types (base64 events and results), response compression, the stage as a base path."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from typing import Any

from inferstack.manifest import parse_manifest
from inferstack.topology import Route
from inferstack_infra.local.gateway import Gateway, media_type_matches
from tests.conftest import ROOT


class Echo:
    """A function that answers with `size` bytes, base64-encoded, and keeps the events it got."""

    def __init__(self, size: int = 10) -> None:
        self.events: list[dict[str, Any]] = []
        self.size = size

    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(b"\x01" * self.size).decode(), "isBase64Encoded": True}, False


def call(function: Echo, path: str, body: bytes = b"", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    manifest = parse_manifest({"models": [{"name": "m", "path": "x.onnx", "tier": "light"}]}, root=ROOT,
                              check_files=False)
    gateway = Gateway(manifest, [Route("POST", "/v2/models/m/infer", "predict-m", api_key_required=False)],
                      function, {}, log=lambda _: None)
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
        await gateway(scope, receive, send)

    asyncio.run(run())
    start, payload = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, payload["body"]


def test_a_gzip_body_reaches_the_function_decoded_and_base64() -> None:
    # GIVEN a gzip JSON body and a binary one without a content type (as tritonclient sends them)
    function = Echo()
    status, _, _ = call(function, "/v2/models/m/infer", gzip.compress(b'{"inputs": []}'),
                        {"content-encoding": "gzip", "content-type": "application/json"})
    call(function, "/v2/models/m/infer", b'{"inputs": []}\xff\x00\x80')
    # THEN both reach the function base64-encoded (binary media types */*), the first decoded
    assert status == 200
    first, second = function.events
    assert first["isBase64Encoded"] and base64.b64decode(first["body"]) == b'{"inputs": []}'
    assert base64.b64decode(second["body"]) == b'{"inputs": []}\xff\x00\x80'


def test_bad_codings_are_415_and_bombs_413() -> None:
    function = Echo()
    status, headers, body = call(function, "/v2/models/m/infer", b"{}", {"content-encoding": "br"})
    assert status == 415 and headers["content-type"] == "application/problem+json"
    assert call(function, "/v2/models/m/infer", b"not gzip", {"content-encoding": "gzip"})[0] == 415
    bomb = gzip.compress(b" " * 11 * 1024 * 1024)
    assert call(function, "/v2/models/m/infer", bomb, {"content-encoding": "gzip"})[0] == 413
    assert function.events == []
    assert json.loads(body)["type"] == "urn:inferstack:problem:unsupported-encoding"


def test_stage_base_path_and_compressed_answers() -> None:
    # GIVEN an answer of 2 KB, asked for under the stage's base path with and without Accept-Encoding
    function = Echo(size=2048)
    plain = call(function, "/prod/v2/models/m/infer", b"{}")
    packed = call(function, "/prod/v2/models/m/infer", b"{}", {"accept-encoding": "gzip, deflate"})
    refused = call(function, "/prod/v2/models/m/infer", b"{}", {"accept-encoding": "br, gzip"})
    small = call(Echo(size=100), "/v2/models/m/infer", b"{}", {"accept-encoding": "gzip"})
    # THEN the function sees the path without the stage; the base64 result comes back as bytes, gzip when asked
    assert function.events[0]["path"] == "/v2/models/m/infer"
    assert function.events[0]["requestContext"]["path"] == "/prod/v2/models/m/infer"
    assert plain[2] == b"\x01" * 2048 and "content-encoding" not in plain[1]
    assert packed[1]["content-encoding"] == "gzip" and gzip.decompress(packed[2]) == b"\x01" * 2048
    assert packed[1]["content-length"] == str(len(packed[2]))
    assert "content-encoding" not in refused[1]  # the client's first choice is one API Gateway does not produce
    assert "content-encoding" not in small[1] and small[2] == b"\x01" * 100  # under minimumCompressionSize


def test_media_type_matching() -> None:
    patterns = ("application/octet-stream", "image/*")
    assert media_type_matches("application/octet-stream; charset=x", patterns)
    assert media_type_matches("image/png", patterns) and not media_type_matches("text/plain", patterns)
    assert not media_type_matches(None, patterns)  # API Gateway's default, application/json
    assert media_type_matches(None) and media_type_matches("text/html")  # the API's */*

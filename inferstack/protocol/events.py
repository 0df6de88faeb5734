"""API Gateway REST proxy events and results for the functions that answer straight from the event.

Bodies arrive base64-encoded (`isBase64Encoded`) when their content type is one of the API's binary media types
(`BINARY_MEDIA_TYPES`, all of them: clients of the protocol such as tritonclient send binary tensors without a
content type), and a body that still carries its `Content-Encoding` is decoded here under the body limit.
Results that are not text go back base64-encoded, which API Gateway turns back into bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from inferstack.api import problems
from inferstack.api.problems import ProblemError
from inferstack.protocol.codec import HEADER_LENGTH, InferRequest, header, header_length, parse_infer_request
from inferstack.protocol.compression import decode_body

#: The REST API's binary media types. `*/*`: every request body reaches a function base64-encoded, and every
#: base64 result goes back as bytes whatever the client's Accept (tritonclient sends neither Content-Type nor
#: Accept with binary tensors; API Gateway would mangle such a body as text otherwise).
BINARY_MEDIA_TYPES = ("*/*",)
#: Responses at least this large are compressed for clients that send Accept-Encoding (API Gateway's
#: `minimumCompressionSize`): below it, compression saves little and costs latency.
MIN_COMPRESSION_BYTES = 1024
TEXT_TYPES = ("application/json", "application/problem+json", "text/")


def event_body(event: dict[str, Any], limit: int) -> bytes:
    """The request body: base64-decoded where API Gateway encoded it, decoded where it still carries its
    Content-Encoding; a 413 past `limit` bytes (before and after decoding)."""
    text = event.get("body") or ""
    if len(text) > (limit * 4 // 3 + 4 if event.get("isBase64Encoded") else limit):
        raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is over {limit} bytes, the limit (send large "
                           "batches as jobs)")
    raw = base64.b64decode(text) if event.get("isBase64Encoded") else text.encode()
    if len(raw) > limit:
        raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is {len(raw)} bytes; this API accepts at most "
                           f"{limit} bytes (send large batches as jobs)")
    return decode_body(raw, header(event.get("headers"), "Content-Encoding"), limit)


def infer_request(event: dict[str, Any], limit: int) -> InferRequest:
    body = event_body(event, limit)
    return parse_infer_request(body, header_length(header(event.get("headers"), HEADER_LENGTH), len(body)))


def requested_version(path: str, model: str) -> str | None:
    """`X` of `/v2/models/<model>/versions/X/...`, or None for the unversioned path."""
    prefix = f"/v2/models/{model}/versions/"
    return path[len(prefix):].split("/", 1)[0] if path.startswith(prefix) else None


def check_version(path: str, model: str, served: str) -> None:
    asked = requested_version(path, model)
    if asked is not None and asked != served:
        raise ProblemError(problems.MODEL_NOT_FOUND, f"Model {model!r} has no version {asked!r}; it serves "
                           f"version {served!r}", model=model)


def proxy_result(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A Lambda proxy result; bodies that are not text travel base64-encoded."""
    content_type = headers.get("content-type", "")
    text = content_type.startswith(TEXT_TYPES)
    return {"statusCode": status, "headers": {**headers, "content-length": str(len(body))}, "multiValueHeaders": {},
            "body": body.decode() if text else base64.b64encode(body).decode(), "isBase64Encoded": not text}

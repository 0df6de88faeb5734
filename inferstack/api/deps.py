"""What every route may need from a request: the caller's API key, a body read within the limit."""

from __future__ import annotations

import os

from fastapi import Request

from inferstack import env
from inferstack.api import problems
from inferstack.api.body import read_limited
from inferstack.api.problems import ProblemError
from inferstack.protocol.compression import decode_body

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


def max_body_bytes() -> int:
    return int(os.environ.get(env.MAX_BODY_BYTES) or DEFAULT_MAX_BODY_BYTES)


def caller_key_id(request: Request) -> str:
    """The API key ID that API Gateway authenticated (jobs and batches belong to it)."""
    event = request.scope.get("aws.event") or {}
    identity = (event.get("requestContext") or {}).get("identity") or {}
    key_id = identity.get("apiKeyId")
    if not key_id:
        raise ProblemError(problems.FORBIDDEN, "This route needs an API key (x-api-key)")
    return str(key_id)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 once it passes `limit` bytes (read no further); decoded if it still carries
    its Content-Encoding (API Gateway decodes before the function; a direct call may not have), a 413 if it
    decodes past `limit`."""
    raw = await read_limited(request, limit)
    return decode_body(raw, request.headers.get("content-encoding"), limit)

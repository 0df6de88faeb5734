"""Reading a request body no further than a limit: for every front door (the API function's FastAPI app and the
heavy container's Starlette app), with nothing but Starlette imported."""

from __future__ import annotations

from starlette.requests import Request

from inferstack.api import problems
from inferstack.api.problems import ProblemError


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it passes `limit` bytes (what was declared, or what arrived): a client that
    sends more costs no more than the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is {declared} bytes; at most {limit} are accepted")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is over {limit} bytes, the limit")
    return bytes(raw)

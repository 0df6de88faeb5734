"""The predict route's contract, without FastAPI: body parsing and problems, shared by the FastAPI app and
the predict function's lean request path (which must start and answer fast)."""

from __future__ import annotations

import contextlib
import json
import math
from types import ModuleType
from typing import Any

from inferstack.api import problems
from inferstack.api.jsonbody import parse_json
from inferstack.api.problems import ProblemError

orjson: ModuleType | None
try:
    import orjson
except ImportError:  # not in the Lambda layers: the standard library's encoder serves there
    orjson = None

#: Problems named one by one in an answer; past this many, counted (a body of a million bad fields gets a short
#: answer).
MAX_REPORTED = 10

__all__ = ["ProblemError", "parse_json_body", "predict_body", "predict_inputs"]


def parse_json_body(raw: bytes) -> Any:
    """The body's JSON value; a 400 `malformed-json` problem for every kind of malformed body."""
    return parse_json(raw)


def predict_inputs(raw: bytes, body_limit: int) -> Any:
    """The `inputs` of a predict body, or a `ProblemError` saying what is wrong with it."""
    if len(raw) > body_limit:
        raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is {len(raw)} bytes; this API accepts at most "
                           f"{body_limit} bytes (send large batches as jobs)")
    body = parse_json_body(raw)
    if not isinstance(body, dict) or "inputs" not in body:
        raise ProblemError(problems.INVALID_REQUEST, 'The body must be a JSON object {"inputs": ...}',
                           errors=[{"input": "inputs", "detail": "required"}])
    if len(body) > 1:
        unknown = [k[:100] for k in body if k != "inputs"]
        named = ", ".join(unknown[:MAX_REPORTED]) + (f" and {len(unknown) - MAX_REPORTED} more"
                                                     if len(unknown) > MAX_REPORTED else "")
        raise ProblemError(problems.INVALID_REQUEST, f"Unknown field(s) {named}; the body is {{\"inputs\": ...}}",
                           errors=[{"input": k, "detail": "unknown field"} for k in unknown[:MAX_REPORTED]])
    return body["inputs"]


#: Built once (`json.dumps(..., separators=...)` builds an encoder per call, measurable on the hot path), and
#: strict: NaN and infinities are not JSON, so the encoder refuses them and `_finite_or_null` takes over.
_STRICT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    return value


def predict_body(model: str, version: str, outputs: dict[str, Any]) -> bytes:
    """The predict response; model outputs that are NaN or infinite become null. With orjson installed (the heavy
    container has it) a response of embeddings encodes some 20x faster, to the same JSON values."""
    document = {"model": model, "version": version, "outputs": outputs}
    if orjson is not None:
        with contextlib.suppress(TypeError):  # what orjson cannot encode, the encoder below reports as before
            encoded: bytes = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)  # NaN, infinities: null
            return encoded
    try:
        return _STRICT.encode(document).encode()
    except ValueError:
        return _STRICT.encode(_finite_or_null(document)).encode()

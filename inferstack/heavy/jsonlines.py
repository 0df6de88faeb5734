"""JSON Lines on the heavy container's `/invocations` (`Content-Type: application/jsonlines`): what a SageMaker
Batch Transform job sends with `SplitType: Line` and `BatchStrategy: MultiRecord`, many records per request.

Each line is one row, as in a light batch (`inferstack.batches.rows`): for a model without a handler an object
of input name -> that row's value, for a model with a handler that handler's request body; an `"id"` is
returned with its answer. The answer has exactly one line per input line, in order (Batch Transform joins the
answers of a file's requests into its `.out` file, and the batch's Finish step numbers the lines by position):
`{"id"?, "outputs": {...}}` or `{"id"?, "error": {"type", "detail"}}` with type `malformed-line`,
`invalid-input` or `inference-error`. A bad line never fails the request, nor another line. The rows go to
the dynamic batcher like concurrent requests, so they stack into the model's batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from inferstack import env
from inferstack.api.errors import to_problem
from inferstack.api.predict import orjson, predict_body

if TYPE_CHECKING:
    from inferstack.heavy.batching import DynamicBatcher
    from inferstack.inference.session import Predictor, Prepared

JSONLINES_TYPES = ("application/jsonlines", "application/jsonl", "application/x-jsonlines")
DEFAULT_MAX_PAYLOAD_MB = 6
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def is_jsonlines(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in JSONLINES_TYPES


def max_payload_bytes() -> int:
    """The largest JSON Lines body taken: the transform job's MaxPayloadInMB, passed in its environment."""
    return int(float(os.environ.get(env.HEAVY_MAX_PAYLOAD_MB) or DEFAULT_MAX_PAYLOAD_MB) * 1024 * 1024)


def _error(row_id: Any, kind: str, detail: str) -> bytes:
    line: dict[str, Any] = {"id": row_id} if row_id is not None else {}
    line["error"] = {"type": kind, "detail": detail}
    return _dumps(line).encode()


def _failure(row_id: Any, exc: BaseException, model: str) -> bytes:
    problem = to_problem(exc, context={"model": model})
    return _error(row_id, "invalid-input" if problem.status in (400, 413, 422) else "inference-error",
                  problem.detail)


def _parse(raw: bytes) -> tuple[Any, Any] | bytes:
    """A line's (request, id), or its error line."""
    if not raw.strip():
        return _error(None, "malformed-line", "empty line: expected a JSON object")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return _error(None, "malformed-line", f"not JSON: {exc}")
    if type(value) is not dict:
        return _error(None, "malformed-line",
                      f"expected a JSON object of input name -> value, got {type(value).__name__}")
    return value, value.pop("id", None)


def _request(predictor: Predictor, value: dict[str, Any]) -> Any:
    """A row as a request of one row: a handler's body as it is, else each input's value with a batch axis."""
    return value if predictor.handler is not None else {k: [v] for k, v in value.items()}


def _prepare_all(predictor: Predictor, lines: list[bytes]) -> list[tuple[Prepared, Any] | bytes]:
    out: list[tuple[Prepared, Any] | bytes] = []
    for raw in lines:
        parsed = _parse(raw)
        if isinstance(parsed, bytes):
            out.append(parsed)
            continue
        value, row_id = parsed
        try:
            prepared = predictor.prepare(_request(predictor, value))
        except Exception as exc:
            out.append(_failure(row_id, exc, predictor.name))
            continue
        out.append((prepared, row_id))
    return out


def _answer_line(predictor: Predictor, prepared: Prepared, row_id: Any, outputs: Any) -> bytes:
    try:
        result = predictor.respond(prepared, outputs)
        if predictor.handler is None:
            result = {k: v[0] for k, v in result.items()}
        line: dict[str, Any] = {"id": row_id} if row_id is not None else {}
        if orjson is not None:
            with contextlib.suppress(TypeError):  # NaN and infinities become null, as predict answers
                encoded: bytes = orjson.dumps({**line, "outputs": result}, option=orjson.OPT_SERIALIZE_NUMPY)
                return encoded
        # the predict encoder: NaN and infinities become null, numpy values are encoded
        line["outputs"] = json.loads(predict_body(predictor.name, predictor.version, result))["outputs"]
        return _dumps(line).encode()
    except Exception as exc:
        return _failure(row_id, exc, predictor.name)


def split_lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the body's last newline
    return [line.rstrip(b"\r") for line in lines]


async def score(raw: bytes, predictor: Predictor, batcher: DynamicBatcher) -> bytes:
    """The answer to a JSON Lines body: one line per input line, each ending in a newline."""
    lines = split_lines(raw)
    prepared = await asyncio.to_thread(_prepare_all, predictor, lines)
    runs = [item for item in prepared if not isinstance(item, bytes)]
    results = await asyncio.gather(*(batcher.submit(p.arrays) for p, _ in runs), return_exceptions=True)
    by_run = iter(results)

    def answer() -> bytes:
        out = []
        for item in prepared:
            if isinstance(item, bytes):
                out.append(item)
                continue
            outputs = next(by_run)
            p, row_id = item
            out.append(_failure(row_id, outputs, predictor.name) if isinstance(outputs, BaseException)
                       else _answer_line(predictor, p, row_id, outputs))
        return b"".join(line + b"\n" for line in out)

    return await asyncio.to_thread(answer)

"""A chunk's rows: parsed from its bytes, scored as stacked calls, written as output and error lines.

Each row is one request of one row: for a model without a handler, an object of input name -> that row's value
(the leading batch axis is added here); for a model with a handler, that handler's request body. A row may
carry an `"id"`, returned with its result. A row that is not JSON, not an object, or of the wrong shape or
type becomes a line of the errors file naming its line number and the reason; it never fails the chunk.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferstack.batches.schemas import BatchContext
from inferstack.inference.spec import TensorSpec
from inferstack.inference.validation import to_jsonable
from inferstack.jobs.worker import Errored, InProcessRunner, Invalid, Runner, Succeeded

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass
class Row:
    """One row: its line number, its value (input name -> that row's value, or a handler's request body) and
    its "id"."""

    line: int
    inputs: Any
    id: Any = None


@dataclass
class Scored:
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return len(self.outputs)

    @property
    def failed(self) -> int:
        return len(self.errors)


def _error(line: int, row_id: Any, kind: str, detail: str) -> str:
    out: dict[str, Any] = {"line": line}
    if row_id is not None:
        out["id"] = row_id
    out["error"] = {"type": kind, "detail": detail}
    return _dumps(out)


def _lines(data: Any) -> Any:
    lines = data.split(b"\n" if isinstance(data, bytes) else "\n")
    if lines and not lines[-1]:
        lines.pop()  # the chunk's last newline
    return lines


class ChunkRows:
    """Turns a chunk's bytes into rows for one model (its signature, whether it has a handler)."""

    def __init__(self, inputs: Sequence[TensorSpec], *, handler: bool) -> None:
        self.specs = {s.name: s for s in inputs}
        self.handler = handler

    def parse(self, data: bytes, first_line: int, ctx: BatchContext, scored: Scored) -> list[Row]:
        if ctx.format == "csv":
            return self._parse_csv(data, first_line, ctx, scored)
        rows: list[Row] = []
        try:
            lines: list[Any] = _lines(data.decode("utf-8"))  # one decode, not one per line
        except UnicodeDecodeError:
            lines = _lines(data)  # json.loads pins the bad bytes on their line
        for n, raw in enumerate(lines, start=first_line):
            if not raw.strip():
                scored.errors.append(_error(n, None, "malformed-line", "empty line: expected a JSON object"))
                continue
            try:
                value = json.loads(raw)
            except RecursionError:  # one hostile line fails itself, not its chunk
                scored.errors.append(_error(n, None, "malformed-line", "not JSON: nested too deeply"))
                continue
            except ValueError as exc:
                reason = str(exc) if isinstance(exc, json.JSONDecodeError | UnicodeError) else \
                    "an integer with too many digits"
                scored.errors.append(_error(n, None, "malformed-line", f"not JSON: {reason}"))
                continue
            if type(value) is not dict:
                scored.errors.append(_error(n, None, "malformed-line", "expected a JSON object of input name -> "
                                            f"value, got {type(value).__name__}"))
                continue
            row_id = value.pop("id", None)
            rows.append(Row(n, value, row_id))
        return rows

    def columns(self, ctx: BatchContext) -> dict[str, list[int]]:
        """Each model input's column positions in the CSV header (raises ValueError naming the problem)."""
        header = ctx.header or []
        mapping = ctx.columns
        if mapping is None:
            if len(self.specs) != 1:
                raise ValueError(f"columns: the model has inputs {', '.join(self.specs)}; name each one's columns")
            mapping = {next(iter(self.specs)): [c for c in header if c != "id"]}
        out: dict[str, list[int]] = {}
        for name, cols in mapping.items():
            if name not in self.specs:
                raise ValueError(f"columns: {name!r} is not an input of the model ({', '.join(self.specs)})")
            missing = [c for c in cols if c not in header]
            if missing:
                raise ValueError(f"columns.{name}: {', '.join(map(repr, missing))} not in the CSV header")
            out[name] = [header.index(c) for c in cols]
        return out

    def _parse_csv(self, data: bytes, first_line: int, ctx: BatchContext, scored: Scored) -> list[Row]:
        positions = self.columns(ctx)
        header = ctx.header or []
        id_at = header.index("id") if "id" in header else None
        rows: list[Row] = []
        text = [raw.decode("utf-8", errors="replace").rstrip("\r") for raw in _lines(data)]
        for n, cells in enumerate(csv.reader(text), start=first_line):
            if len(cells) != len(header):
                scored.errors.append(_error(n, None, "malformed-line",
                                            f"{len(cells)} fields where the header has {len(header)}"))
                continue
            row_id = cells[id_at] if id_at is not None else None
            inputs: dict[str, Any] = {}
            try:
                for name, at in positions.items():
                    values = [cells[i] for i in at]
                    inputs[name] = values if self.specs[name].dtype == "str" else [_number(v) for v in values]
            except ValueError as exc:
                scored.errors.append(_error(n, row_id, "invalid-input", str(exc)))
                continue
            rows.append(Row(n, inputs, row_id))
        return rows


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def score(runner: Runner, rows: list[Row], scored: Scored, *, handler: bool) -> None:
    """Run the rows and add their lines. A model without a handler runs the chunk as one stacked call when
    every row is well-formed (`_score_stacked`); otherwise each row is one request to the runner, which
    validates them one by one and stacks those that fit (`inference.stacking`), so each problem stays its row's."""
    if not rows:
        return
    if not handler and isinstance(runner, InProcessRunner) and _score_stacked(runner, rows, scored):
        return
    requests = [r.inputs if handler or type(r.inputs) is not dict else {k: [v] for k, v in r.inputs.items()}
                for r in rows]
    outcomes = runner.run(requests)
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, Succeeded):
            outputs = outcome.outputs if handler else {k: v[0] for k, v in outcome.outputs.items()}
            line: dict[str, Any] = {"line": row.line}
            if row.id is not None:
                line["id"] = row.id
            line["outputs"] = outputs
            try:
                scored.outputs.append(_dumps(line))
            except ValueError:  # NaN or infinity in a handler's output: null, as predict answers
                line["outputs"] = _finite(outputs)
                scored.outputs.append(_dumps(line))
        elif isinstance(outcome, Invalid):
            scored.errors.append(_error(row.line, row.id, "invalid-input", str(outcome.error)))
        elif isinstance(outcome, Errored):
            scored.errors.append(_error(row.line, row.id, "inference-error", outcome.message))
        else:
            raise RuntimeError(f"row {row.line}: the model cannot run now ({outcome})")


def _encode_rows(array: Any) -> list[str]:
    """Each row of an output as JSON, as `json.dumps` writes it (floats by their repr), a column at a time:
    plain numbers and rows of finite floats without an encoder call each."""
    kind = array.dtype.kind
    if array.ndim == 1 and kind in "iu":
        return list(map(str, array.tolist()))
    if kind == "f" and array.ndim in (1, 2) and np.isfinite(array).all():
        if array.ndim == 1:
            return list(map(repr, array.tolist()))
        return ["[" + ",".join(map(repr, row)) + "]" for row in array.tolist()]
    return [_dumps(v) for v in to_jsonable(array)]


def _score_stacked(runner: InProcessRunner, rows: list[Row], scored: Scored) -> bool:
    """The whole chunk as one validated array per input and one inference call, its outputs encoded a column
    at a time. False (nothing added) when any row needs to be looked at on its own."""
    names = [s.name for s in runner.predictor.inputs]
    wanted = set(names)
    stacked: dict[str, list[Any]] = {n: [] for n in names}
    for row in rows:
        value = row.inputs
        if type(value) is not dict or value.keys() != wanted:
            return False
        for n in names:
            stacked[n].append(value[n])
    try:
        arrays = runner.predictor.validate(stacked)
        outputs = runner._run(arrays)
    except Exception:
        return False
    encoded = []
    for name, array in outputs.items():
        if array.ndim == 0 or len(array) != len(rows):
            return False
        encoded.append((_dumps(name), _encode_rows(array)))
    for i, row in enumerate(rows):
        head = f'{{"line":{row.line},' + (f'"id":{_dumps(row.id)},' if row.id is not None else "")
        scored.outputs.append(head + '"outputs":{' + ",".join(f"{k}:{col[i]}" for k, col in encoded) + "}}")
    return True

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

from inferstack.batches.schemas import BatchContext
from inferstack.inference.spec import TensorSpec
from inferstack.jobs.worker import Errored, Invalid, Runner, Succeeded

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass
class Row:
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


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
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
        for n, raw in enumerate(_lines(data), start=first_line):
            if not raw.strip():
                scored.errors.append(_error(n, None, "malformed-line", "empty line: expected a JSON object"))
                continue
            try:
                value = json.loads(raw)
            except ValueError as exc:
                scored.errors.append(_error(n, None, "malformed-line", f"not JSON: {exc}"))
                continue
            if type(value) is not dict:
                scored.errors.append(_error(n, None, "malformed-line", "expected a JSON object of input name -> "
                                            f"value, got {type(value).__name__}"))
                continue
            row_id = value.pop("id", None)
            rows.append(Row(n, value if self.handler else {k: [v] for k, v in value.items()}, row_id))
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
                    inputs[name] = [values if self.specs[name].dtype == "str" else [_number(v) for v in values]]
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
    """Run the rows (stacked where their tensors stack: `InProcessRunner` validates the chunk as one call and
    falls back to `inference.stacking` groups when a row is at fault) and add their lines."""
    if not rows:
        return
    outcomes = runner.run([r.inputs for r in rows])
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

"""Ragged batching: requests whose tensors differ in length along a variable axis stack all the same.

A model whose manifest entry says `pad = { input_ids = 0, attention_mask = 0, token_type_ids = 0 }` declares that
padding those inputs along their symbolic (named, non-batch) axes with those values leaves its answer for the
real positions unchanged, as an attention mask makes it for a transformer. Requests then stack whatever their
lengths: each is padded to the batch's longest, and each output axis that carries the same symbolic dimension
(the ONNX graph names it: `last_hidden_state[batch, sequence, 384]` shares `sequence` with `input_ids`) is cut
back to the request's own length before its handler sees it. So a handler need not pad to fixed buckets, and a
request of 11 tokens is run at 11 wherever the batch allows (`heavy.windows` picks batches of like lengths).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferstack.inference.spec import TensorSpec

Arrays = dict[str, np.ndarray]

#: A model call's fixed cost, in padded elements, where nothing better is known (`heavy.windows.CallCost` learns
#: the model's own): a few rows of a sentence.
DEFAULT_CALL_OVERHEAD = 64.0


class PaddingError(ValueError):
    """The manifest's `pad` names something the model cannot be padded along: `field` says which entry."""

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True)
class Padding:
    #: input name -> the value its padding holds
    values: dict[str, Any]
    #: input name -> {axis: symbolic dimension}, the axes padded (never the leading, batch, axis)
    input_axes: dict[str, dict[int, str]]
    #: output name -> {axis: symbolic dimension}, the axes cut back to each request's length
    output_axes: dict[str, dict[int, str]]

    @classmethod
    def from_signature(cls, values: dict[str, Any], inputs: Sequence[TensorSpec],
                       outputs: Sequence[TensorSpec]) -> Padding:
        """Raises `PaddingError` naming the entry of `pad` that is not a model input with a symbolic axis."""
        by_name = {s.name: s for s in inputs}
        input_axes: dict[str, dict[int, str]] = {}
        for name, value in values.items():
            spec = by_name.get(name)
            if spec is None:
                raise PaddingError(f"pad.{name}", f"the model has no input {name!r} (its inputs: "
                                   f"{', '.join(by_name)})")
            axes = {i: d for i, d in enumerate(spec.shape) if i > 0 and isinstance(d, str)}
            if not axes:
                raise PaddingError(f"pad.{name}", f"input {name!r} has no named variable axis to pad along "
                                   f"(shape {spec.shape_text()}); only inputs whose non-batch dims are symbolic "
                                   "can be padded")
            if spec.dtype in ("str", "bool") or np.asarray(value).astype(spec.dtype) != value:
                raise PaddingError(f"pad.{name}", f"{value!r} is not a value of input {name!r}'s type, "
                                   f"{spec.dtype}; expected a number it holds exactly")
            input_axes[name] = axes
        dims = {d for axes in input_axes.values() for d in axes.values()}
        for spec in outputs:  # a variable axis not named as a padded one could not be cut back: refuse
            unknown = [d for d in spec.shape[1:] if (d is None or isinstance(d, str)) and d not in dims]
            if unknown:
                raise PaddingError("pad", f"output {spec.name!r} has a variable axis ({unknown[0] or 'unnamed'}, "
                                   f"shape {spec.shape_text()}) not named like a padded input's "
                                   f"({', '.join(sorted(dims))}): its padded rows could not be cut back to each "
                                   "request's length. Name the axes alike in the graph, or remove pad")
        output_axes = {s.name: {i: d for i, d in enumerate(s.shape) if i > 0 and d in dims} for s in outputs}
        return cls(dict(values), input_axes, {k: v for k, v in output_axes.items() if v})

    def extent(self, arrays: Arrays) -> dict[str, int] | None:
        """A request's length along each padded dimension; None when its inputs disagree on one (such a
        request never stacks with another)."""
        sizes: dict[str, int] = {}
        for name, axes in self.input_axes.items():
            array = arrays.get(name)
            if array is None or array.ndim <= max(axes):
                return None
            for axis, dim in axes.items():
                if sizes.setdefault(dim, int(array.shape[axis])) != array.shape[axis]:
                    return None
        return sizes

    def key(self, arrays: Arrays) -> tuple[Any, ...]:
        """What must match for two requests to stack: names, dtypes, and every dim but the batch and padded ones."""
        parts = []
        for name, a in arrays.items():
            padded = self.input_axes.get(name, {})
            parts.append((name, a.dtype.str, tuple(-1 if i in padded else n for i, n in enumerate(a.shape) if i)))
        extent = self.extent(arrays)
        return (tuple(sorted(parts)), None if extent is None else tuple(sorted(extent)),
                None if extent is not None else id(arrays))

    def stack(self, requests: Sequence[Arrays]) -> Arrays:
        """Every request padded to the longest along each padded axis, then their rows one after another."""
        extents = [self.extent(r) or {} for r in requests]
        longest = {d: max(e[d] for e in extents) for d in extents[0]}
        out = {}
        for name in requests[0]:
            axes = self.input_axes.get(name)
            if not axes:
                out[name] = np.concatenate([r[name] for r in requests])
                continue
            parts = []
            for r in requests:
                a = r[name]
                widths = [(0, longest[axes[i]] - n if i in axes else 0) for i, n in enumerate(a.shape)]
                parts.append(np.pad(a, widths, constant_values=self.values[name]) if any(w for _, w in widths)
                             else a)
            out[name] = np.concatenate(parts)
        return out

    def split(self, outputs: Arrays, requests: Sequence[Arrays], stacked: Arrays) -> list[Arrays]:
        """Each request's rows of a padded run's outputs, cut back to its own length along the padded dims.
        Raises ValueError when an output's axis is not the padded length (its name promised it would be)."""
        longest = self.extent(stacked) or {}
        for name, axes in self.output_axes.items():
            value = outputs.get(name)
            if value is not None and any(value.shape[i] != longest[d] for i, d in axes.items()):
                raise ValueError(f"output {name!r} of shape {value.shape} does not follow the padded length")
        result, start = [], 0
        for r in requests:
            rows = int(next(iter(r.values())).shape[0])
            extent = self.extent(r) or {}
            mine = {}
            for name, value in outputs.items():
                piece = value[start:start + rows]
                cut = self.output_axes.get(name)
                if cut:
                    piece = piece[tuple(slice(0, extent[cut[i]]) if i in cut else slice(None)
                                        for i in range(piece.ndim))]
                mine[name] = piece
            result.append(mine)
            start += rows
        return result

    def size(self, arrays: Arrays) -> int:
        """Elements per row along the padded dims: what a row costs, relative to others of this model."""
        extent = self.extent(arrays) or {}
        return int(np.prod(list(extent.values()))) if extent else 1


def partition(sizes: Sequence[int], rows: Sequence[int], *, max_rows: int, overhead: float) -> list[list[int]]:
    """Requests of different lengths split into batches of like lengths at the least total cost
    `sum(overhead + batch rows * its longest)`, each batch at most `max_rows` rows (a larger request alone).
    `sizes` are elements per row (the padded axes' lengths multiplied), `rows` each request's rows, `overhead` a
    call's fixed cost in elements (`heavy.windows.CallCost`); returns indices into them, shortest batch first. By
    dynamic programming over the requests sorted by length: exact when `max_rows` does not bind (all of them fit
    one batch, as in the heavy container's rounds), and over the distinct lengths then, so its time grows with
    those, not with the requests; where it binds, batches are contiguous runs of lengths (near the best)."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    if sum(rows) <= max_rows:  # one unit per distinct length: requests of one length never gain by splitting
        units: list[list[int]] = []
        for i in order:
            if units and sizes[units[-1][0]] == sizes[i]:
                units[-1].append(i)
            else:
                units.append([i])
        cuts = _cuts([sizes[u[0]] for u in units], [sum(rows[i] for i in u) for u in units], max_rows, overhead)
        return [sorted(i for u in units[a:b] for i in u) for a, b in cuts]
    cuts = _cuts([sizes[i] for i in order], [rows[i] for i in order], max_rows, overhead)
    return [sorted(order[a:b]) for a, b in cuts]


def _cuts(sizes: Sequence[int], rows: Sequence[int], max_rows: int, overhead: float) -> list[tuple[int, int]]:
    """The cheapest split of items sorted by size into contiguous runs: [(start, end), ...]."""
    n = len(sizes)
    best = [0.0] + [float("inf")] * n  # best[j]: the cheapest split of the first j items
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest, batch_rows = sizes[j - 1], 0
        for i in range(j, 0, -1):  # the last batch holds items i-1 .. j-1
            batch_rows += rows[i - 1]
            if batch_rows > max_rows and i < j:
                break
            cost = best[i - 1] + overhead + batch_rows * longest
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    runs, j = [], n
    while j > 0:
        runs.append((cut[j], j))
        j = cut[j]
    return runs[::-1]

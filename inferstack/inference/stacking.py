"""Gathering apart from running: requests whose tensors stack run as one call, each gets its own rows back.

Used by the heavy container's dynamic batcher, the job worker, and every other place that runs several
requests at once. Requests stack when their tensors share names, dtypes and every dimension but the leading
(batch) one (`stack_key`), or, for a model that declares padding (`inference.ragged`), every dimension but the
batch and padded ones. When a stacked call raises, each request runs alone, so one bad request fails only
itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inferstack.inference.ragged import Padding

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


def stack_key(arrays: Arrays) -> tuple[Any, ...]:
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in arrays.items()))


def rows_of(arrays: Arrays) -> int:
    return int(next(iter(arrays.values())).shape[0]) if arrays else 0


def stack(requests: Sequence[Arrays]) -> Arrays:
    """One tensor per input, the requests' rows one after another (requests must share a `stack_key`)."""
    if len(requests) == 1:
        return requests[0]
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}


def split(outputs: Arrays, rows: Sequence[int]) -> list[Arrays]:
    """Each request's rows of a stacked call's outputs, in order."""
    out, start = [], 0
    for n in rows:
        out.append({k: v[start:start + n] for k, v in outputs.items()})
        start += n
    return out


#: A padded group of requests (the job worker's, a v2 batch's) runs in batches of like lengths of at most this
#: many rows (`ragged.partition`).
PADDED_MAX_ROWS = 64


def group(requests: Sequence[Arrays], padding: Padding | None = None) -> list[list[int]]:
    """The requests' indices grouped by `stack_key`, each group in order, groups by first appearance; with
    `padding`, by `padding.key`, each group split into batches of like lengths."""
    key = padding.key if padding else stack_key
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, arrays in enumerate(requests):
        groups.setdefault(key(arrays), []).append(i)
    if padding is None:
        return list(groups.values())
    from inferstack.inference.ragged import DEFAULT_CALL_OVERHEAD, partition

    out = []
    for members in groups.values():
        for batch in partition([padding.size(requests[m]) for m in members],
                               [rows_of(requests[m]) for m in members], max_rows=PADDED_MAX_ROWS,
                               overhead=DEFAULT_CALL_OVERHEAD):
            out.append([members[i] for i in batch])
    return out


def run_stacked(run: RunFn, requests: Sequence[Arrays], padding: Padding | None = None) -> list[Arrays | Exception]:
    """Run requests that share a `stack_key` (or a `padding.key`: padded to the longest) as one call; if it
    raises, run each alone. Returns each request's outputs, or the exception its own run raised."""
    if not requests:
        return []
    try:
        if padding is not None and len(requests) > 1:
            stacked = padding.stack(requests)
            return list(padding.split(run(stacked), requests, stacked))
        return list(split(run(stack(requests)), [rows_of(r) for r in requests]))
    except Exception as exc:
        if len(requests) == 1:
            return [exc]
    results: list[Arrays | Exception] = []
    for arrays in requests:
        try:
            results.append(run(arrays))
        except Exception as exc:
            results.append(exc)
    return results

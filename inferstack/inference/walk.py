"""Measure a request's nested lists before any array is built from them.

`np.asarray` on the raw nested list of a request costs memory in proportion to what the body *declares*, not to
its size: strings sent to a numeric input become a fixed-width unicode array of N x longest-string x 4 bytes
(an 80 KB body took a process to 1.6 GB), mixed values an object array. `walk` checks instead, level by level
and without recursion, that the lists are rectangular, counts the elements against a cap, and collects the
types of the leaves (the per-row work runs in C: `map(len, ...)`, `map(type, ...)`), so that the caller can
refuse a wrong dtype or shape before allocating anything, and then build the array in the model's dtype at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import chain
from typing import Any

from inferstack import env
from inferstack.inference.exceptions import InputProblem

#: numpy's largest number of dimensions.
MAX_DIMS = 64
#: Bodies this large at most reach a predict process when the environment names no limit (SageMaker's 6 MB).
DEFAULT_BODY_BYTES = 6 * 1024 * 1024


def element_cap() -> int:
    """The most elements a request may carry: each takes at least two bytes of JSON (`0,`), so a body within
    the process's body limit never holds more."""
    return int(os.environ.get(env.MAX_BODY_BYTES) or DEFAULT_BODY_BYTES) // 2


@dataclass(frozen=True)
class Walked:
    """Rectangular nested lists: their shape and the (exact) types of their leaves."""

    shape: tuple[int, ...]
    kinds: frozenset[type]


def _index(flat: int, dims: list[int]) -> str:
    """`[i][j]...` of the `flat`-th list of a level whose parents have the shape `dims`."""
    out = []
    for d in reversed(dims):
        flat, i = divmod(flat, d)
        out.append(i)
    return "".join(f"[{i}]" for i in reversed(out))


def _describe(value: Any) -> str:
    return f"a list of {len(value)} items" if type(value) is list else "a scalar"


def _ragged(level: list[Any], first: int, dims: list[int], path: str) -> InputProblem:
    bad = next(i for i, v in enumerate(level) if type(v) is not list or len(v) != len(level[first]))
    return InputProblem(f"{path}{_index(bad, dims)}", f"ragged nested list: expected {_describe(level[first])} "
                        f"(like {path}{_index(first, dims)}), got {_describe(level[bad])}")


def walk(value: Any, path: str, cap: int) -> Walked | InputProblem:
    """The shape and leaf types of `value`, or the problem that makes it not a tensor: ragged lists, more than
    `cap` elements, more than `MAX_DIMS` dimensions."""
    if type(value) is not list:
        return Walked((), frozenset({type(value)}))
    level: list[Any] = [value]
    shape: list[int] = []
    while True:
        lengths = set(map(len, level))
        if len(lengths) > 1:
            return _ragged(level, 0, shape, path)
        n = lengths.pop()
        dims = shape.copy()
        shape.append(n)
        if len(level) * n > cap:
            return InputProblem(path, f"more than {cap} elements (shape {shape} so far); this API takes at most "
                                f"{cap} in one request: send fewer rows per request")
        if len(shape) > MAX_DIMS:
            return InputProblem(path, f"nested more than {MAX_DIMS} levels deep")
        kinds: set[type] = set()
        for row in level:
            kinds.update(map(type, row))
        if list not in kinds:
            return Walked(tuple(shape), frozenset(kinds))
        if len(kinds) > 1:  # lists beside scalars at the same depth
            children = list(chain.from_iterable(level))
            first = next(i for i, v in enumerate(children) if type(v) is list)
            return _ragged(children, first, [*dims, n], path)
        level = list(chain.from_iterable(level))

"""Turn a request's `inputs` (JSON nested lists) into numpy arrays that match a model's signature.

Every problem is reported with the input's path, what the model expects and what was given, so that a client
can fix its request from the 422 alone. All problems of a request are reported at once.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from inferstack.inference.exceptions import InputProblem, InputValidationError
from inferstack.inference.spec import TensorSpec
from inferstack.inference.walk import element_cap, walk

warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning,
                        module=__name__)

#: Unknown input names reported one by one; past this many, counted.
MAX_REPORTED = 10

#: onnxruntime's type strings (`NodeArg.type`) to numpy dtype names.
ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def _kind_name(arr: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings"}.get(
        arr.dtype.kind, "mixed values"
    )


_KIND_NAMES: dict[frozenset[type], str] = {frozenset({str}): "strings", frozenset({bool}): "booleans",
                                           frozenset({int}): "integers", frozenset({float}): "numbers",
                                           frozenset({int, float}): "numbers"}
_NUMBERS = frozenset({int, float})


def _leaf_problem(kinds: frozenset[type], spec: TensorSpec, path: str) -> InputProblem | None:
    """What is wrong with leaves of these types for `spec`'s dtype, if anything (an empty batch has none)."""
    if not kinds:
        return None
    given = _KIND_NAMES.get(kinds, "mixed values")
    if spec.dtype == "str":
        return None if kinds == {str} else InputProblem(path, f"expected strings, got {given}", expected="str",
                                                        given=given)
    if spec.dtype == "bool":
        return None if kinds == {bool} else InputProblem(path, f"expected booleans, got {given}", expected="bool")
    if kinds <= _NUMBERS:
        return None
    if type(None) in kinds or given == "mixed values":
        return InputProblem(path, f"contains null or mixed types; expected {spec.dtype} values", expected=spec.dtype)
    return InputProblem(path, f"expected {spec.dtype} numbers, got {given}", expected=spec.dtype)


def _build(value: Any, spec: TensorSpec, kinds: frozenset[type], path: str) -> np.ndarray | InputProblem:
    """The array of checked nested lists, built in the model's dtype at once (no string or object array first)."""
    target = _dtype(spec.dtype)
    if target.kind in "bO":
        return np.array(value, dtype=target)
    try:
        if target.kind == "f":
            return np.array(value, dtype=target)
        # integers: floats must be integral, and every value in the target's range (`_cast` checks both)
        wide = np.float64 if float in kinds else np.uint64 if target.kind == "u" else np.int64
        return _cast(np.array(value, dtype=wide), spec, path)
    except OverflowError:
        return InputProblem(path, f"values out of range for {spec.dtype}", expected=spec.dtype)


def _to_array(value: Any, spec: TensorSpec, path: str, symbols: dict[str, tuple[int, str]], cap: int
              ) -> np.ndarray | InputProblem:
    if spec.shape and not isinstance(value, list):
        return InputProblem(path, f"expected a nested list ({spec.describe()}), got {type(value).__name__}",
                            expected=spec.shape_text())
    walked = walk(value, path, cap)
    if isinstance(walked, InputProblem):
        walked = InputProblem(walked.input, walked.detail, expected=spec.shape_text())
        return walked
    problem = _check_shape(walked.shape, spec, path, symbols) or _leaf_problem(walked.kinds, spec, path)
    return problem or _build(value, spec, walked.kinds, path)


@functools.cache
def _dtype(name: str) -> np.dtype[Any]:
    return np.dtype(object) if name == "str" else np.dtype(name)


def _cast(arr: np.ndarray, spec: TensorSpec, path: str) -> np.ndarray | InputProblem:
    target = _dtype(spec.dtype)
    given = arr.dtype.kind
    if spec.dtype == "str":
        if given != "U":
            return InputProblem(path, f"expected strings, got {_kind_name(arr)}", expected="str", given=str(arr.dtype))
        return arr.astype(object)
    if target.kind == "b":
        if given != "b":
            return InputProblem(path, f"expected booleans, got {_kind_name(arr)}", expected="bool")
        return arr
    if given not in "iuf":
        return InputProblem(path, f"expected {spec.dtype} numbers, got {_kind_name(arr)}", expected=spec.dtype)
    if target.kind in "iu":
        if given == "f" and not (np.isfinite(arr).all() and (np.mod(arr, 1) == 0).all()):
            return InputProblem(path, f"expected integers ({spec.dtype}); non-integral numbers cannot be "
                                "cast safely", expected=spec.dtype, given="float")
        info = np.iinfo(spec.dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            return InputProblem(path, f"values out of range for {spec.dtype} ({info.min}..{info.max})",
                                expected=spec.dtype)
    # A float too large for the target becomes inf here, which the finiteness check reports (numpy's
    # overflow warning for it is filtered at the top of this module: cheaper than an errstate per request).
    return arr.astype(target, copy=False)


def _check_shape(got: tuple[int, ...], spec: TensorSpec, path: str, symbols: dict[str, tuple[int, str]]
                 ) -> InputProblem | None:
    want = spec.shape
    if len(got) != len(want):
        given_text = str(list(got))
        hint = " (the leading axis is the batch: wrap a single row in a list)" if len(got) + 1 == len(want) else ""
        return InputProblem(path, f"expected rank {len(want)}, shape {spec.shape_text()}; got rank {len(got)}, "
                            f"shape {given_text}{hint}", expected=spec.shape_text(), given=given_text)
    for axis, (w, g) in enumerate(zip(want, got, strict=True)):
        if isinstance(w, int) and w >= 0 and w != g:
            given_text = str(list(got))
            return InputProblem(path, f"dimension {axis} must be {w}, got {g} (expected shape "
                                f"{spec.shape_text()}, given {given_text})", expected=spec.shape_text(),
                                given=given_text)
        if isinstance(w, str):
            seen = symbols.setdefault(w, (g, path))
            if seen[0] != g:
                return InputProblem(path, f"dimension {axis} ({w}) is {g} here but {seen[0]} in {seen[1]}; "
                                    f"inputs sharing {w} must agree", expected=spec.shape_text(),
                                    given=str(list(got)))
    if got and got[0] == 0:
        return InputProblem(path, "empty batch: send at least one row", expected=spec.shape_text(),
                            given=str(list(got)))
    return None


def validate_inputs(raw: Any, specs: Sequence[TensorSpec], *, allow_non_finite: bool = False,
                    max_elements: int | None = None) -> dict[str, np.ndarray]:
    """Validate `inputs` from a request body against `specs`; raise `InputValidationError` with every problem.
    The nested lists are walked (shape, element types, at most `max_elements` elements: by default what a body
    within the process's limit can hold) before any array is allocated."""
    cap = max_elements or element_cap()
    if isinstance(raw, list):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise InputValidationError([InputProblem(
                "inputs", f"a bare array is only accepted by models with one input; this model has {names}: "
                "send an object mapping each input name to a nested list")])
        raw = {specs[0].name: raw}
    if not isinstance(raw, dict):
        raise InputValidationError([InputProblem(
            "inputs", f"expected an object mapping input names to nested lists, got {type(raw).__name__}",
            expected="{" + ", ".join(f'"{s.name}": [...]' for s in specs) + "}")])

    problems: list[InputProblem] = []
    known = [s.name for s in specs]
    unknown = [name for name in raw if name not in known]
    for name in unknown[:MAX_REPORTED]:  # a body of a million made-up names gets a short answer
        problems.append(InputProblem(f"inputs.{name[:100]}", f"unknown input; this model's inputs are "
                                     f"{', '.join(sorted(known))}", expected=", ".join(sorted(known)),
                                     given=name[:100]))
    if len(unknown) > MAX_REPORTED:
        problems.append(InputProblem("inputs", f"{len(unknown) - MAX_REPORTED} more unknown inputs"))
    arrays: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[int, str]] = {}
    for spec in specs:
        path = f"inputs.{spec.name}"
        if spec.name not in raw:
            problems.append(InputProblem(path, f"missing; expected {spec.describe()}", expected=spec.describe()))
            continue
        converted = _to_array(raw[spec.name], spec, path, symbols, cap)
        if isinstance(converted, InputProblem):
            problems.append(converted)
            continue
        non_finite = None if allow_non_finite else _non_finite(converted, spec, path)
        if non_finite:
            problems.append(non_finite)
            continue
        arrays[spec.name] = converted
    if problems:
        raise InputValidationError(problems)
    return arrays


def to_jsonable(arr: np.ndarray) -> Any:
    """A numpy array as nested lists; NaN and infinities (not representable in JSON) become null."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return out.tolist()
    return arr.tolist()


def check_tensors(arrays: dict[str, np.ndarray], specs: Sequence[TensorSpec]
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Check the tensors a model handler built against the model's signature: returns them (cast where the
    cast keeps the kind of number, e.g. int32 to int64) and what is wrong with them, if anything."""
    problems: list[str] = []
    known = {s.name for s in specs}
    problems += [f"{name}: the model has no such input (its inputs: {', '.join(sorted(known))})"
                 for name in arrays if name not in known]
    out: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[int, str]] = {}
    for spec in specs:
        arr = arrays.get(spec.name)
        if arr is None:
            problems.append(f"{spec.name}: missing; the model expects {spec.describe()}")
            continue
        target = _dtype(spec.dtype)
        if arr.dtype != target:
            if spec.dtype == "str" or not np.can_cast(arr.dtype, target, casting="same_kind"):
                problems.append(f"{spec.name}: {arr.dtype} cannot be cast to the model's {spec.dtype}")
                continue
            arr = arr.astype(target)
        shape_problem = _check_shape(arr.shape, spec, spec.name, symbols)
        if shape_problem:
            problems.append(f"{spec.name}: {shape_problem.detail}")
            continue
        out[spec.name] = arr
    return out, problems


def validate_arrays(arrays: dict[str, np.ndarray], specs: Sequence[TensorSpec], *, allow_non_finite: bool = False
                    ) -> dict[str, np.ndarray]:
    """Check arrays a request already carries as tensors (the Open Inference Protocol's) against `specs`, by the
    rules and with the problems of `validate_inputs`: names, dtype (cast as a nested list's values would be),
    shape, finiteness. Raises `InputValidationError` with every problem."""
    problems = [InputProblem(f"inputs.{name}", f"unknown input; this model's inputs are "
                             f"{', '.join(sorted(s.name for s in specs))}", given=name)
                for name in arrays if name not in {s.name for s in specs}]
    out: dict[str, np.ndarray] = {}
    symbols: dict[str, tuple[int, str]] = {}
    for spec in specs:
        path = f"inputs.{spec.name}"
        arr = arrays.get(spec.name)
        if arr is None:
            problems.append(InputProblem(path, f"missing; expected {spec.describe()}", expected=spec.describe()))
            continue
        if arr.dtype == object:
            converted: np.ndarray | InputProblem = arr if spec.dtype == "str" else InputProblem(
                path, f"expected {spec.dtype} numbers, got strings", expected=spec.dtype, given="BYTES")
        elif spec.dtype == "str":
            converted = InputProblem(path, f"expected strings, got {_kind_name(arr)}", expected="str",
                                     given=str(arr.dtype))
        else:
            converted = _cast(arr, spec, path)
        if isinstance(converted, InputProblem):
            problems.append(converted)
            continue
        shape_problem = _check_shape(converted.shape, spec, path, symbols)
        if shape_problem:
            problems.append(shape_problem)
            continue
        non_finite = None if allow_non_finite else _non_finite(converted, spec, path)
        if non_finite:
            problems.append(non_finite)
            continue
        out[spec.name] = converted
    if problems:
        raise InputValidationError(problems)
    return out


def _non_finite(arr: np.ndarray, spec: TensorSpec, path: str) -> InputProblem | None:
    """A float array's first NaN or infinity (or a number too large for its dtype), as the problem to answer."""
    if arr.dtype.kind != "f" or np.isfinite(arr).all():
        return None
    bad = np.argwhere(~np.isfinite(arr))[0].tolist()
    return InputProblem(path, f"NaN or infinite value at {path}{bad} (or a number too large for {spec.dtype}); "
                        "this model accepts finite numbers only", expected="finite " + spec.dtype)

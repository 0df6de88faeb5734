"""Tensors of the protocol to numpy arrays and back.

JSON `data` (flat, or nested as some clients send it) is walked without recursion; every element's type is
checked against the tensor's datatype and the elements are counted against its shape before any array is
allocated, so a request costs memory in proportion to its own size. Binary tensors are read in place
(`np.frombuffer`, little-endian); BYTES elements are 4-byte little-endian lengths followed by their bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from inferstack.inference.exceptions import InputProblem, InputValidationError
from inferstack.protocol.codec import HEADER_LENGTH, InferRequest, InputTensor, encode_json
from inferstack.protocol.datatypes import FLOAT_TYPES, INTEGER_TYPES, V2_TO_DTYPE, v2_datatype
from inferstack.protocol.exceptions import BinaryDataError, InferRequestError
from inferstack.protocol.metadata import TensorMeta

Arrays = dict[str, np.ndarray]
_LENGTH = struct.Struct("<I")


def _allowed(datatype: str) -> tuple[set[type], str]:
    if datatype in FLOAT_TYPES:
        return {float, int}, "numbers"
    if datatype in INTEGER_TYPES:
        return {int}, "integers"
    if datatype == "BOOL":
        return {bool}, "booleans"
    return {str}, "strings"


def _flatten(data: Any, limit: int, where: str) -> list[Any]:
    """The elements of nested lists, depth first, without recursion; at most `limit + 1` are collected."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack: list[Iterator[Any]] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
            if len(flat) > limit:
                raise InputValidationError([InputProblem(where, f"data has more than the {limit} elements its "
                                                         "shape holds")])
        else:
            stack.pop()
    return flat


def _from_json(t: InputTensor, where: str) -> np.ndarray:
    count = t.count
    flat = _flatten(t.data, count, where)
    if len(flat) != count:
        raise InputValidationError([InputProblem(where, f"data has {len(flat)} elements, but shape {t.shape} "
                                                 f"holds {count}", expected=str(count), given=str(len(flat)))])
    allowed, kind = _allowed(t.datatype)
    if not {type(x) for x in flat} <= allowed:
        i, bad = next((i, x) for i, x in enumerate(flat) if type(x) not in allowed)
        raise InputValidationError([InputProblem(f"{where}.data[{i}]", f"{t.datatype} takes {kind}, got "
                                                 f"{type(bad).__name__} {str(bad)[:40]!r}", expected=t.datatype)])
    if t.datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = flat
        return arr.reshape(t.shape)
    try:
        return np.array(flat, dtype=V2_TO_DTYPE[t.datatype]).reshape(t.shape)
    except OverflowError:
        raise InputValidationError([InputProblem(where, f"values out of range for {t.datatype}",
                                                 expected=t.datatype)]) from None


def _bytes_elements(t: InputTensor, where: str) -> np.ndarray:
    raw = t.raw
    assert raw is not None
    count = t.count
    if count * _LENGTH.size > len(raw):
        raise BinaryDataError(f"{where}: {len(raw)} bytes cannot hold {count} BYTES elements")
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + _LENGTH.size > len(raw):
            raise BinaryDataError(f"{where}: the binary data ends inside element {i} of {count}")
        (n,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + n > len(raw):
            raise BinaryDataError(f"{where}: element {i} declares {n} bytes, {len(raw) - offset} are left")
        try:
            out[i] = str(raw[offset:offset + n], "utf-8")
        except UnicodeDecodeError:
            raise InputValidationError([InputProblem(f"{where}[{i}]", "not valid UTF-8 text")]) from None
        offset += n
    if offset != len(raw):
        raise BinaryDataError(f"{where}: {count} BYTES elements take {offset} bytes, but binary_data_size is "
                              f"{len(raw)}")
    return out.reshape(t.shape)


def decode(t: InputTensor) -> np.ndarray:
    """One input as an array of its declared datatype and shape; `InputValidationError` (422) or
    `BinaryDataError` (400) when its data does not fit them."""
    where = f"inputs.{t.name}"
    if t.raw is None:
        return _from_json(t, where)
    if t.datatype == "BYTES":
        return _bytes_elements(t, where)
    dtype = np.dtype(V2_TO_DTYPE[t.datatype]).newbyteorder("<")
    return np.frombuffer(t.raw, dtype=dtype, count=t.count).reshape(t.shape)


def decode_all(request: InferRequest) -> Arrays:
    """Every input decoded; all problems of the request reported at once."""
    arrays: Arrays = {}
    problems: list[InputProblem] = []
    for t in request.inputs:
        try:
            arrays[t.name] = decode(t)
        except InputValidationError as exc:
            problems += exc.problems
    if problems:
        raise InputValidationError(problems)
    return arrays


def as_handler_inputs(arrays: Arrays, metas: list[TensorMeta] | None) -> dict[str, Any]:
    """Decoded tensors as a handler's `inputs`: nested lists, a scalar field of its `Request` unwrapped."""
    scalar = {m.name for m in metas or [] if m.scalar}
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        if name in scalar and arr.size == 1:
            value = arr.reshape(-1)[0]
            out[name] = value.item() if isinstance(value, np.generic) else value
        else:
            out[name] = arr.tolist()
    return out


def from_handler_outputs(answer: dict[str, Any], metas: list[TensorMeta] | None) -> Arrays:
    """A handler's JSON-ready outputs as arrays of the datatypes its `Response` schema declares; ValueError if
    one is not rectangular."""
    types = {m.name: m.datatype for m in metas or []}
    out: Arrays = {}
    for name, value in answer.items():
        datatype = types.get(name)
        dtype = object if datatype == "BYTES" else V2_TO_DTYPE.get(datatype or "", None)
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype.kind == "U":
            arr = arr.astype(object)
        out[name] = arr
    return out


def _datatype(arr: np.ndarray) -> str:
    return "BYTES" if arr.dtype.kind in "OUS" else v2_datatype(arr.dtype.name)


def _binary(arr: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for item in arr.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts += (_LENGTH.pack(len(data)), data)
    return b"".join(parts)


def _json_data(arr: np.ndarray, datatype: str) -> list[Any]:
    flat = arr.reshape(-1)
    if datatype == "BYTES":
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in flat]
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        mixed = flat.astype(object)
        mixed[~np.isfinite(flat)] = None
        return list(mixed.tolist())
    return list(flat.tolist())


def encode_response(request: InferRequest, outputs: Arrays, *, model: str, version: str
                    ) -> tuple[bytes, dict[str, str]]:
    """The infer response (only the outputs asked for, in their order; binary where asked) and its headers."""
    if request.outputs is None:
        wanted = [(name, request.binary_output) for name in outputs]
    else:
        unknown = [o.name for o in request.outputs if o.name not in outputs]
        if unknown:
            raise InferRequestError("outputs", f"unknown output(s) {', '.join(unknown)}; this model's outputs are "
                                    f"{', '.join(outputs)}")
        wanted = [(o.name, request.binary_output if o.binary is None else o.binary) for o in request.outputs]
    entries, chunks = [], []
    for name, binary in wanted:
        arr = outputs[name]
        datatype = _datatype(arr)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            data = _binary(arr, datatype)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = _json_data(arr, datatype)
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model, "model_version": version}
    if request.id is not None:
        document["id"] = request.id
    passed = request.passed_parameters()
    if passed:
        try:
            encode_json(passed)
            document["parameters"] = passed
        except ValueError:  # NaN or infinity, which JSON parsers accept and JSON cannot carry back
            pass
    document["outputs"] = entries
    head = encode_json(document)
    if not chunks:
        return head, {"content-type": "application/json"}
    return b"".join([head, *chunks]), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}

"""The infer request's envelope: JSON or the binary data extension, parsed and checked without numpy.

A binary request is `Inference-Header-Content-Length` bytes of JSON, then each binary input's bytes in the order
of the JSON's inputs, each input's `parameters.binary_data_size` long. Everything a request declares is checked
against what it carries before a tensor is built: the sizes must add up to the body (a declared size that does
not match the bytes is a 400), and a fixed-width tensor's size must be its shape's element count times the
datatype's width.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferstack.api.predict import parse_json_body
from inferstack.protocol.datatypes import ITEMSIZE, V2_TO_DTYPE, element_count
from inferstack.protocol.exceptions import BinaryDataError, InferRequestError

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"
#: Reserved request and tensor parameters of the binary data extension (not passed through).
RESERVED_PARAMETERS = frozenset({"binary_data_output", "binary_data", "binary_data_size"})


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: list[int]
    #: JSON `data` (flat or nested), or None for a binary input.
    data: Any = None
    #: The input's bytes in the binary data extension, or None for a JSON input.
    raw: memoryview | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return element_count(self.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    #: `parameters.binary_data` of this output, None when it does not say.
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    inputs: list[InputTensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The outputs asked for, in order; None: all of them.
    outputs: list[RequestedOutput] | None = None

    @property
    def binary_output(self) -> bool:
        """`parameters.binary_data_output`: outputs in binary unless an output says otherwise."""
        return bool(self.parameters.get("binary_data_output", False))

    def passed_parameters(self) -> dict[str, Any]:
        """The request's parameters without the binary extension's own: returned with the response."""
        return {k: v for k, v in self.parameters.items() if k not in RESERVED_PARAMETERS}


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value, whatever the case of its name (API Gateway passes names as the client sent them).
    On the predict function's hot path: names of another length are skipped without lower-casing them."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered, size = name.lower(), len(name)
    for key, value in headers.items():
        if len(key) == size and key.lower() == lowered:
            return value
    return None


def header_length(value: str | None, body_length: int) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        length = int(value)
    except ValueError:
        raise BinaryDataError(f"{HEADER_LENGTH} must be an integer, got {value[:40]!r}") from None
    if not 0 < length <= body_length:
        raise BinaryDataError(f"{HEADER_LENGTH} is {length}, but the body is {body_length} bytes")
    return length


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InferRequestError(where, f"expected an object, got {type(value).__name__}")
    return value


def _parameters(value: Any, where: str) -> dict[str, Any]:
    return {} if value is None else _object(value, where)


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(d) is int for d in value):
        raise InferRequestError(where, "expected a list of integers")
    if any(d < 0 for d in value):
        raise InferRequestError(where, f"dimensions must not be negative, got {value}")
    return value


def _input(raw: Any, i: int, binary: memoryview | None, offset: int) -> tuple[InputTensor, int]:
    where = f"inputs[{i}]"
    tensor = _object(raw, where)
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InferRequestError(f"{where}.name", "required: the input's name")
    where = f"inputs.{name}"
    datatype = tensor.get("datatype")
    if datatype not in V2_TO_DTYPE:
        raise InferRequestError(f"{where}.datatype", f"expected one of {', '.join(V2_TO_DTYPE)}, "
                                f"got {str(datatype)[:40]!r}")
    shape = _shape(tensor.get("shape"), f"{where}.shape")
    parameters = _parameters(tensor.get("parameters"), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    has_data = "data" in tensor
    if size is None:
        if not has_data:
            raise InferRequestError(where, "needs `data`, or `parameters.binary_data_size` with binary data")
        return InputTensor(name, datatype, shape, data=tensor["data"], parameters=parameters), offset
    if has_data:
        raise InferRequestError(where, "has both `data` and `parameters.binary_data_size`; send one")
    if type(size) is not int or size < 0:
        raise BinaryDataError(f"{where}: binary_data_size must be a non-negative integer, got {size!r}")
    if binary is None:
        raise BinaryDataError(f"{where}: binary_data_size is {size}, but the request has no binary data "
                              f"(send {HEADER_LENGTH})")
    if offset + size > len(binary):
        raise BinaryDataError(f"{where}: binary_data_size is {size}, but only {len(binary) - offset} bytes of "
                              "binary data are left")
    width = ITEMSIZE.get(datatype)
    if width is not None and size != element_count(shape) * width:
        raise BinaryDataError(f"{where}: binary_data_size is {size}, but shape {shape} of {datatype} takes "
                              f"{element_count(shape) * width} bytes")
    return InputTensor(name, datatype, shape, raw=binary[offset:offset + size], parameters=parameters), offset + size


def parse_infer_request(body: bytes, json_length: int | None = None) -> InferRequest:
    """An infer request from its body; `json_length` is `Inference-Header-Content-Length` (None: all JSON)."""
    binary: memoryview | None = None
    document = body
    if json_length is not None:
        document, binary = body[:json_length], memoryview(body)[json_length:]
    return infer_request_from(parse_json_body(document), binary)


def infer_request_from(parsed: Any, binary: memoryview | None = None) -> InferRequest:
    """An infer request from its parsed JSON (and the binary data that followed it, if any)."""
    if not isinstance(parsed, dict):
        raise InferRequestError("body", 'expected an infer request object {"inputs": [...]}')
    inputs = parsed.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InferRequestError("inputs", "required: a non-empty list of input tensors")
    tensors, offset = [], 0
    for i, raw in enumerate(inputs):
        tensor, offset = _input(raw, i, binary, offset)
        tensors.append(tensor)
    if binary is not None and offset != len(binary):
        raise BinaryDataError(f"The inputs' binary_data_size add up to {offset} bytes, but {len(binary)} bytes "
                              f"follow the JSON header")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise InferRequestError("inputs", "each input may appear once")
    request_id = parsed.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferRequestError("id", "expected a string")
    outputs = parsed.get("outputs")
    requested = None
    if outputs is not None:
        if not isinstance(outputs, list):
            raise InferRequestError("outputs", "expected a list of requested outputs")
        requested = []
        for i, raw in enumerate(outputs):
            out = _object(raw, f"outputs[{i}]")
            name = out.get("name")
            if not isinstance(name, str) or not name:
                raise InferRequestError(f"outputs[{i}].name", "required: the output's name")
            binary_flag = _parameters(out.get("parameters"), f"outputs[{i}].parameters").get("binary_data")
            requested.append(RequestedOutput(name, None if binary_flag is None else bool(binary_flag)))
    return InferRequest(inputs=tensors, id=request_id, parameters=_parameters(parsed.get("parameters"),
                                                                              "parameters"), outputs=requested)


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode_json(document: Any) -> bytes:
    return _ENCODER.encode(document).encode()

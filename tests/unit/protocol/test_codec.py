"""The infer request envelope and tensors: what a request declares is checked against what it carries before
anything is allocated; responses as tritonclient reads them."""

from __future__ import annotations

import json
import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferInput, InferResult
from tritonclient.http._utils import _get_inference_request

from inferstack.inference.exceptions import InputValidationError
from inferstack.protocol.codec import InferRequest, RequestedOutput, parse_infer_request
from inferstack.protocol.exceptions import BinaryDataError, InferRequestError
from inferstack.protocol.metadata import from_schema
from inferstack.protocol.tensors import decode, decode_all, encode_response


def triton_body(array: np.ndarray, datatype: str, *, binary: bool) -> tuple[bytes, int | None]:
    tensor = InferInput("x", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    body, size = _get_inference_request([tensor], "", None, 0, False, False, 0, None, None)
    return body, size


TENSORS = [(np.arange(12, dtype=np.float32).reshape(3, 4), "FP32"), (np.arange(6, dtype=np.int64), "INT64"),
           (np.array([[True, False]]), "BOOL"), (np.arange(4, dtype=np.float16), "FP16"),
           (np.array([b"caf\xc3\xa9", b"", b"x"], dtype=object), "BYTES"), (np.arange(3, dtype=np.uint8), "UINT8")]


# (tritonclient sends FP16 in binary only)
@pytest.mark.parametrize(("array", "datatype", "binary"), [(a, d, b) for a, d in TENSORS for b in (False, True)
                                                           if b or d != "FP16"])
def test_tritonclients_requests_decode_to_their_arrays(array: np.ndarray, datatype: str, binary: bool) -> None:
    body, size = triton_body(array, datatype, binary=binary)
    (decoded,) = decode_all(parse_infer_request(body, size)).values()
    if datatype == "BYTES":
        assert decoded.tolist() == [b.decode() for b in array.tolist()]
    else:
        assert decoded.dtype == array.dtype and np.array_equal(decoded, array)


@pytest.mark.parametrize(("body", "error", "says"), [
    (b'{"inputs": []}', InferRequestError, "non-empty list"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', InferRequestError, "needs `data`"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', InferRequestError,
     "must not be negative"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": "2", "data": [1]}]}', InferRequestError,
     "list of integers"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},'
     b' {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}', InferRequestError, "once"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}',
     BinaryDataError, "no binary data"),
])
def test_malformed_envelopes(body: bytes, error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        parse_infer_request(body)


def test_binary_sizes_must_add_up() -> None:
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2],
                                   "parameters": {"binary_data_size": 8}}]}).encode()
    assert parse_infer_request(head + b"\0" * 8, len(head)).inputs[0].raw is not None
    with pytest.raises(BinaryDataError, match="add up to 8 bytes, but 9"):
        parse_infer_request(head + b"\0" * 9, len(head))
    with pytest.raises(BinaryDataError, match="only 4 bytes"):
        parse_infer_request(head + b"\0" * 4, len(head))
    with pytest.raises(BinaryDataError, match="declares 99 bytes"):
        bytes_head = json.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1],
                                             "parameters": {"binary_data_size": 8}}]}).encode()
        decode_all(parse_infer_request(bytes_head + struct.pack("<I", 99) + b"abcd", len(bytes_head)))


def test_a_huge_declared_shape_costs_nothing() -> None:
    # GIVEN a tiny request that declares a shape of 10^12 elements
    request = parse_infer_request(b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1000000, 1000000],'
                                  b' "data": [1, 2, 3]}]}')
    tracemalloc.start()
    # WHEN decoded THEN it is refused, and nothing near its declared size was allocated
    with pytest.raises(InputValidationError, match="holds 1000000000000"):
        decode(request.inputs[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_json_elements_are_checked_before_allocation() -> None:
    many_strings = {"name": "x", "datatype": "FP32", "shape": [3], "data": [1.0, "x" * 100_000, 2]}
    with pytest.raises(InputValidationError, match=r"inputs.x.data\[1\]: FP32 takes numbers"):
        decode_all(parse_infer_request(json.dumps({"inputs": [many_strings]}).encode()))
    with pytest.raises(InputValidationError, match="INT64 takes integers"):
        decode_all(parse_infer_request(b'{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], '
                                       b'"data": [1.5]}]}'))
    with pytest.raises(InputValidationError, match="out of range for INT8"):
        decode_all(parse_infer_request(b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], '
                                       b'"data": [300]}]}'))
    # nested data, as KServe and some Triton examples send it, is flattened in row-major order
    nested = parse_infer_request(b'{"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2], '
                                 b'"data": [[1, 2], [3, 4]]}]}')
    assert decode(nested.inputs[0]).tolist() == [[1, 2], [3, 4]]


def _result(body: bytes, headers: dict[str, str]) -> InferResult:
    size = headers.get("Inference-Header-Content-Length")
    return InferResult.from_response_body(body, header_length=int(size) if size else None)


def test_responses_read_by_tritonclient() -> None:
    outputs = {"label": np.array([0, 2], dtype=np.int64), "p": np.array([[0.5, np.nan]], dtype=np.float32),
               "t": np.array(["é", "b"], dtype=object)}
    request = InferRequest(inputs=[], id="7", parameters={"binary_data_output": True, "tenant": "a"},
                           outputs=[RequestedOutput("t"), RequestedOutput("label", binary=False),
                                    RequestedOutput("p")])
    body, headers = encode_response(request, outputs, model="m", version="v1")
    result = _result(body, headers)
    response: dict[str, Any] = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["t", "label", "p"]
    assert response["id"] == "7" and response["parameters"] == {"tenant": "a"}
    assert result.as_numpy("t").tolist() == ["é".encode(), b"b"]
    assert result.as_numpy("label").tolist() == [0, 2]
    assert np.isnan(result.as_numpy("p")[0, 1]) and result.as_numpy("p").dtype == np.float32
    json_only, headers = encode_response(InferRequest(inputs=[]), {"p": outputs["p"]}, model="m", version="v1")
    assert headers == {"content-type": "application/json"}
    assert json.loads(json_only)["outputs"][0]["data"] == [0.5, None]  # NaN is not JSON
    with pytest.raises(InferRequestError, match="unknown output"):
        encode_response(InferRequest(inputs=[], outputs=[RequestedOutput("nope")]), outputs, model="m",
                        version="v1")


def test_handler_schemas_become_tensors() -> None:
    schema = {"type": "object", "properties": {
        "text": {"type": "array", "items": {"type": "string"}},
        "vectors": {"type": "array", "items": {"type": "array", "items": {"type": "number"},
                                               "minItems": 384, "maxItems": 384}},
        "k": {"type": "integer"}, "flag": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}}
    metas = {m.name: (m.datatype, m.shape, m.scalar) for m in from_schema(schema) or []}
    assert metas == {"text": ("BYTES", [-1], False), "vectors": ("FP32", [-1, 384], False),
                     "k": ("INT64", [1], True), "flag": ("BOOL", [1], True)}
    assert from_schema({"type": "object", "properties": {"o": {"type": "object"}}}) is None

"""The Open Inference Protocol through the Lambda entry points, with API Gateway REST proxy events as API
Gateway builds them for the API's binary media types: base64 bodies (`isBase64Encoded`), binary tensors with
`Inference-Header-Content-Length`, gzip bodies. The binary event's body was written by tritonclient's own request
builder (tests/events/apiGatewayProxyEvent_v2InferBinary.json)."""

from __future__ import annotations

import base64
import gzip
import json
import struct
from typing import Any

import numpy as np
import pytest

from tests.conftest import load_event
from tests.functional.conftest import Handler

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def v2_event(body: bytes, *, path: str = "/v2/models/iris/infer", headers: dict[str, str] | None = None,
             method: str = "POST") -> dict[str, Any]:
    event = load_event("apiGatewayProxyEvent_v2InferBinary.json")
    event.update(path=path, resource=path, httpMethod=method, body=base64.b64encode(body).decode(),
                 isBase64Encoded=True)
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Inference-Header-Content-Length"}
    event["headers"].update(headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    return event


def answer_of(response: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary data after it."""
    raw = base64.b64decode(response["body"]) if response["isBase64Encoded"] else response["body"].encode()
    size = int(response["headers"].get("Inference-Header-Content-Length") or len(raw))
    return json.loads(raw[:size]), raw[size:]


def test_tritonclients_binary_request_as_api_gateway_delivers_it(predict_handler: Handler) -> None:
    # GIVEN the event API Gateway builds for tritonclient's binary infer (base64 body, no content type)
    event = load_event("apiGatewayProxyEvent_v2InferBinary.json")
    # WHEN the light predict function answers it
    response = predict_handler(event)
    # THEN label comes back binary (base64 for API Gateway to decode), probabilities as JSON, id echoed
    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "application/octet-stream"
    head, tail = answer_of(response)
    assert head["id"] == "7" and head["model_name"] == "iris"
    label, probabilities = head["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}}
    assert np.frombuffer(tail, dtype="<i8").tolist() == [0, 2]
    assert probabilities["datatype"] == "FP32" and probabilities["shape"] == [2, 3]
    np.testing.assert_allclose(np.array(probabilities["data"]).reshape(2, 3).sum(axis=1), 1.0, atol=1e-5)


def test_json_tensors_give_the_same_answer_as_v1(predict_handler: Handler) -> None:
    # GIVEN the same rows as a v1 predict and as a v2 JSON infer (nested data, as some clients send it)
    v1 = predict_handler({**load_event("apiGatewayProxyEvent_predict.json"),
                          "body": json.dumps({"inputs": {"features": ROWS.tolist()}})})
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4],
                                   "data": ROWS.tolist()}], "parameters": {"tenant": "a"}}).encode()
    # WHEN both are answered
    v2 = predict_handler(v2_event(body, headers={"Content-Type": "application/json"}))
    # THEN the outputs agree, and the request's own parameters come back
    head, tail = answer_of(v2)
    assert v2["statusCode"] == 200 and tail == b"" and head["parameters"] == {"tenant": "a"}
    outputs = {o["name"]: o["data"] for o in head["outputs"]}
    expected = json.loads(v1["body"])["outputs"]
    assert outputs["label"] == expected["label"]
    np.testing.assert_allclose(np.array(outputs["probabilities"]).reshape(2, 3), expected["probabilities"],
                               rtol=1e-6)


def test_gzip_body_is_decoded_and_a_bomb_is_413(predict_handler: Handler) -> None:
    # GIVEN a gzip body sent straight to the function (API Gateway would have decoded it), and a small gzip body
    # that inflates far past the function's 64 KB limit
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                                   "data": ROWS[0].tolist()}]}).encode()
    ok = predict_handler(v2_event(gzip.compress(body), headers={"Content-Encoding": "gzip"}))
    bomb = gzip.compress(b'{"inputs": [' + b" " * 10_000_000 + b"]}")
    assert len(bomb) < 20_000
    refused = predict_handler(v2_event(bomb, headers={"Content-Encoding": "gzip"}))
    # THEN the first is answered, the second is a 413 in the protocol's error shape
    assert ok["statusCode"] == 200, ok["body"]
    assert refused["statusCode"] == 413
    assert set(json.loads(refused["body"])) == {"error"} and "limit" in json.loads(refused["body"])["error"]


@pytest.mark.parametrize(("tensor", "binary", "status", "says"), [
    # a declared binary size that does not match the bytes: 400
    ({"name": "features", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 32}},
     b"\0" * 16, 400, "binary_data_size is 32"),
    ({"name": "features", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 16}},
     b"\0" * 16, 400, "takes 32 bytes"),
    # the same 422s as /v1: rank, dimension, NaN, unknown input, type of an element
    ({"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}, None, 422,
     "inputs.features: dimension 1 must be 4, got 3"),
    ({"name": "features", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, float("nan")]}, None, 422,
     "NaN or infinite value"),
    ({"name": "colour", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}, None, 422,
     "inputs.colour: unknown input"),
    ({"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, "x", 4]}, None, 422,
     "inputs.features.data[2]: FP32 takes numbers"),
    ({"name": "features", "datatype": "FP32", "shape": [100000, 100000], "data": [1, 2]}, None, 422,
     "data has 2 elements, but shape [100000, 100000] holds 10000000000"),
    ({"name": "features", "datatype": "BF16", "shape": [1, 4], "data": [1, 2, 3, 4]}, None, 422,
     "inputs.features.datatype"),
])
def test_bad_tensors_get_the_v1_status_in_the_protocols_shape(predict_handler: Handler, tensor: dict[str, Any],
                                                              binary: bytes | None, status: int, says: str) -> None:
    # GIVEN an infer request with one bad tensor
    head = json.dumps({"inputs": [tensor]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))} if binary is not None else {}
    # WHEN the function answers it
    response = predict_handler(v2_event(head + (binary or b""), headers=headers))
    # THEN the status is /v1's and the body is {"error": ...} naming what is wrong
    assert response["statusCode"] == status, response["body"]
    assert response["headers"]["content-type"] == "application/json"
    error = json.loads(response["body"])
    assert list(error) == ["error"] and says in error["error"], error


def test_another_version_is_404_and_the_served_one_answers(predict_handler: Handler, catalog_file: Any) -> None:
    version = next(m["version"] for m in json.loads(catalog_file.read_text())["models"] if m["name"] == "iris")
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                                   "data": [1, 2, 3, 4]}]}).encode()
    stale = predict_handler(v2_event(body, path="/v2/models/iris/versions/000000000000/infer"))
    served = predict_handler(v2_event(body, path=f"/v2/models/iris/versions/{version}/infer"))
    assert stale["statusCode"] == 404 and version in json.loads(stale["body"])["error"]
    assert served["statusCode"] == 200 and answer_of(served)[0]["model_version"] == version


def test_api_function_serves_metadata_and_health(api_handler: Handler) -> None:
    def get(path: str) -> tuple[int, Any]:
        event = load_event("apiGatewayProxyEvent_model.json")
        event.update(path=path, resource=path, pathParameters=None)
        response = api_handler(event)
        return response["statusCode"], json.loads(response["body"])

    assert get("/v2/health/live") == (200, {"live": True})
    assert get("/v2/health/ready") == (200, {"ready": True})
    assert get("/v2")[1]["extensions"] == ["binary_tensor_data"]
    status, minilm = get("/v2/models/minilm")
    assert status == 200 and minilm["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in minilm["outputs"]] == [("embeddings", "FP32"), ("tokens", "INT64")]
    status, iris = get("/v2/models/iris")
    assert iris["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert get(f"/v2/models/iris/versions/{iris['versions'][0]}/ready") == (200, {"name": "iris", "ready": True})
    status, error = get("/v2/models/nope")
    assert status == 404 and list(error) == ["error"] and "nope" in error["error"]
    status, error = get("/v2/models/iris/versions/old")
    assert status == 404 and "old" in error["error"]


def test_bytes_tensor_in_binary_reaches_a_handler_model() -> None:
    # the BYTES layout of the binary extension, as tritonclient's serialize_byte_tensor writes it
    from tritonclient.utils import serialize_byte_tensor

    from inferstack.protocol.codec import InputTensor
    from inferstack.protocol.tensors import decode

    texts = np.array(["héllo", "", "a man eats"], dtype=object)
    raw = serialize_byte_tensor(texts).item()
    assert raw[:4] == struct.pack("<I", len("héllo".encode()))
    decoded = decode(InputTensor("text", "BYTES", [3], raw=memoryview(raw)))
    assert decoded.tolist() == ["héllo", "", "a man eats"]

"""The Open Inference Protocol against /v1: bytes on the wire and server time per request, in the same run.

For a 1,000-row iris request (the light predict function, answered from the API Gateway event) and a 64-text
minilm request (the heavy container's path: handler, model, response; 64 x 384 float32 out), four ways:

  v1 JSON      POST /v1/models/{name}/predict
  v2 JSON      POST /v2/models/{name}/infer, JSON tensors both ways
  v2 binary    the binary data extension both ways (tritonclient's binary_data=True)
  gzip JSON    v1 JSON, gzip both ways (API Gateway decodes the request and compresses the response)

Bytes are the request and response bodies as they travel between client and API. Server time is the median
of repeated runs of what the server does per request: for iris, the predict function's whole handling of the
event (decoding, validation, inference, encoding, base64 for binary results) plus, for gzip, API Gateway's
decompression and compression; for minilm, the response (postprocess to bytes: what the issue's target is about,
since the model's own time is the same every way) and, beside it, the whole request.
"""

from __future__ import annotations

import base64
import gzip
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WAYS = ("v1 JSON", "v2 JSON", "v2 binary", "gzip JSON")
IRIS_OUT = ["label", "probabilities"]
MINILM_OUT = ["embeddings", "tokens"]


def _median_s(fn: Callable[[], Any], budget_s: float, least: int = 7) -> float:
    fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < least or (time.perf_counter() - began < budget_s and len(times) < 500):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _triton_request(name: str, array: np.ndarray, datatype: str, outputs: list[str], *, binary: bool
                    ) -> tuple[bytes, int | None]:
    """The body tritonclient sends (its own request builder), binary both ways or JSON both ways."""
    from tritonclient.http import InferInput, InferRequestedOutput
    from tritonclient.http._utils import _get_inference_request

    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    wanted = [InferRequestedOutput(o, binary_data=binary) for o in outputs]
    body, size = _get_inference_request([tensor], "", wanted, 0, False, False, 0, None, None)
    return body, size


def _event(path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    # as API Gateway delivers it with the API's binary media types (*/*): base64
    return {"httpMethod": "POST", "path": path, "headers": headers, "isBase64Encoded": True,
            "body": base64.b64encode(body).decode()}


def _client_bytes(result: dict[str, Any]) -> bytes:
    body: str = result["body"]
    return base64.b64decode(body) if result["isBase64Encoded"] else body.encode()


def iris_rows(budget_s: float) -> list[dict[str, Any]]:
    import importlib
    import os
    import sys
    import tempfile

    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog

    rows = np.random.default_rng(0).uniform(0.1, 8, size=(1000, 4)).astype(np.float32)
    tmp = Path(tempfile.mkdtemp()) / "catalog.json"
    build_catalog(load_manifest(ROOT / "inferstack.toml"), bundled=False).dump(tmp)
    os.environ.update(INFERSTACK_CATALOG=str(tmp), INFERSTACK_MODEL="iris")
    sys.modules.pop("inferstack.functions.predict.handler", None)
    handler = importlib.import_module("inferstack.functions.predict.handler")

    v1_body = json.dumps({"inputs": {"features": rows.tolist()}}).encode()
    v2_json, _ = _triton_request("features", rows, "FP32", IRIS_OUT, binary=False)
    v2_bin, size = _triton_request("features", rows, "FP32", IRIS_OUT, binary=True)
    cases: dict[str, tuple[Callable[[], dict[str, Any]], bytes, Callable[[bytes], bytes]]] = {
        "v1 JSON": (lambda: handler.predict(_event("/v1/models/iris/predict", v1_body, {})), v1_body,
                    lambda b: b),
        "v2 JSON": (lambda: handler.infer(_event("/v2/models/iris/infer", v2_json, {})), v2_json, lambda b: b),
        "v2 binary": (lambda: handler.infer(_event("/v2/models/iris/infer", v2_bin, {
            "Inference-Header-Content-Length": str(size)})), v2_bin, lambda b: b),
    }
    gz_request = gzip.compress(v1_body, 6)

    def gzip_json() -> dict[str, Any]:
        # API Gateway's share: decode the request, then compress the response
        result = handler.predict(_event("/v1/models/iris/predict", gzip.decompress(gz_request), {}))
        result["body"] = base64.b64encode(gzip.compress(_client_bytes(result), 6)).decode()
        result["isBase64Encoded"] = True
        return result

    cases["gzip JSON"] = (gzip_json, gz_request, lambda b: b)
    return _rows("iris 1k rows", cases, budget_s)


def _rows(label: str, cases: dict[str, tuple[Callable[[], dict[str, Any]], bytes, Callable[[bytes], bytes]]],
          budget_s: float) -> list[dict[str, Any]]:
    measured = {}
    for way, (call, request, _) in cases.items():
        result = call()
        assert result["statusCode"] == 200, result["body"][:300]
        measured[way] = (len(request), len(_client_bytes(result)), _median_s(call, budget_s))
    return _figures(label, measured, response_time_only=False)


def _figures(label: str, measured: dict[str, tuple[int, int, float]], *, response_time_only: bool,
             whole: dict[str, float] | None = None) -> list[dict[str, Any]]:
    base_req, base_resp, base_time = measured["v1 JSON"]
    out = []
    for way in WAYS[1:]:
        req, resp, seconds = measured[way]
        out.append({"figure": f"{label}, {way}: request B", "value": req, "baselines": {"v1 JSON": base_req},
                    "targets": {}, "better": "lower"})
        target = {"v1 JSON": 0.33} if label.startswith("minilm") and way == "v2 binary" else {}
        out.append({"figure": f"{label}, {way}: response B", "value": resp,
                    "baselines": {"v1 JSON": base_resp}, "targets": target, "better": "lower"})
        what = "ms response" if response_time_only else "server ms"
        target = {"v1 JSON": 0.5} if label.startswith("minilm") and way == "v2 binary" else {}
        out.append({"figure": f"{label}, {way}: {what}", "value": seconds * 1000,
                    "baselines": {"v1 JSON": base_time * 1000}, "targets": target, "better": "lower"})
        if whole:
            out.append({"figure": f"{label}, {way}: ms whole", "value": whole[way] * 1000,
                        "baselines": {"v1 JSON": whole["v1 JSON"] * 1000}, "targets": {}, "better": "lower"})
    return out


def minilm_rows(budget_s: float) -> list[dict[str, Any]]:
    from bench.minilm import texts
    from inferstack.api.predict import predict_body
    from inferstack.inference.session import Predictor
    from inferstack.manifest import load_manifest
    from inferstack.protocol import inference as v2
    from inferstack.protocol.codec import parse_infer_request
    from inferstack.protocol.tensors import encode_response
    from inferstack_infra.catalog import build_catalog

    catalog = build_catalog(load_manifest(ROOT / "inferstack.toml"), bundled=False)
    predictor = Predictor.load(next(m for m in catalog.models if m.name == "minilm"), Path("/"))
    sample = np.array(texts(64, seed=64), dtype=object)
    v1_request = json.dumps({"inputs": {"text": sample.tolist()}}).encode()
    v2_json, _ = _triton_request("text", sample, "BYTES", MINILM_OUT, binary=False)
    v2_bin, size = _triton_request("text", sample, "BYTES", MINILM_OUT, binary=True)
    v1_prepared = predictor.prepare(json.loads(v1_request)["inputs"])
    outputs = predictor.run(v1_prepared.arrays)
    parsed = {"v2 JSON": parse_infer_request(v2_json), "v2 binary": parse_infer_request(v2_bin, size)}
    prepared = {way: v2.prepare(predictor, request) for way, request in parsed.items()}

    def v1_response() -> bytes:
        return predict_body(predictor.name, predictor.version, predictor.respond(v1_prepared, outputs))

    def v2_response(way: str) -> bytes:
        arrays = v2.respond(predictor, prepared[way], outputs)
        body, _ = encode_response(parsed[way], arrays, model=predictor.name, version=predictor.version)
        return body

    responses: dict[str, Callable[[], bytes]] = {
        "v1 JSON": v1_response, "v2 JSON": lambda: v2_response("v2 JSON"),
        "v2 binary": lambda: v2_response("v2 binary"), "gzip JSON": lambda: gzip.compress(v1_response(), 6)}
    requests = {"v1 JSON": v1_request, "v2 JSON": v2_json, "v2 binary": v2_bin,
                "gzip JSON": gzip.compress(v1_request, 6)}

    def whole(way: str) -> Callable[[], Any]:
        if way in ("v1 JSON", "gzip JSON"):
            def v1() -> bytes:
                raw = gzip.decompress(requests[way]) if way == "gzip JSON" else requests[way]
                p = predictor.prepare(json.loads(raw)["inputs"])
                body = predict_body(predictor.name, predictor.version, predictor.respond(p, predictor.run(p.arrays)))
                return gzip.compress(body, 6) if way == "gzip JSON" else body
            return v1

        def v2_whole() -> bytes:
            body, _ = v2.infer(predictor, parse_infer_request(requests[way], size if way == "v2 binary" else None))
            return body
        return v2_whole

    measured = {way: (len(requests[way]), len(fn()), _median_s(fn, budget_s)) for way, fn in responses.items()}
    whole_s = {way: _median_s(whole(way), budget_s, least=5) for way in WAYS}
    return _figures("minilm 64", measured, response_time_only=True, whole=whole_s)


def run(seconds: float = 8) -> list[dict[str, Any]]:
    return iris_rows(seconds / 8) + minilm_rows(seconds / 8)


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))

"""The Open Inference Protocol (KServe v2) beside `/v1`: health, server and model metadata, readiness, infer.

Errors are the protocol's `{"error": "..."}` with the statuses `/v1` answers (the app renders every problem on a
`/v2` path that way). A model's infer route reaches its own function on AWS (the light predict function answers
it from the event; a heavy model's proxy forwards it to the SageMaker endpoint); here it serves the FastAPI apps
that hold a predictor. Nothing here imports numpy: the API function serves metadata from the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response

from inferstack.api import problems
from inferstack.api.deps import read_body
from inferstack.api.problems import ProblemError
from inferstack.api.routes.models import ModelDirectory, ServesPredictions, version_headers, versioned_failure
from inferstack.catalog import ModelInfo
from inferstack.protocol.codec import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    header_length,
    parse_infer_request,
)
from inferstack.protocol.metadata import model_metadata, model_tensors, server_metadata
from inferstack.protocol.schemas import (
    Error,
    InferResponseBody,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
)
from inferstack.rollout import MODEL_VERSION_HEADER

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "content": {"application/json": {}}, "description": description}
    for code, description in ((400, "Malformed JSON, or binary data that does not match its declared size"),
                              (403, "Missing or invalid API key"), (404, "Unknown model or version"),
                              (413, "Body too large (after decompression)"), (415, "Unsupported Content-Encoding"),
                              (422, "Inputs that do not match the model"), (429, "Throttled"),
                              (500, "Internal error"))}

_INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/InferRequestBody"}},
    BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}, "description": (
        f"The binary data extension: a JSON header of {HEADER_LENGTH} bytes (an InferRequestBody whose binary "
        "inputs give parameters.binary_data_size instead of data), then each binary input's bytes")}}}}
_INFER_OK: dict[int | str, dict[str, Any]] = {200: {
    "model": InferResponseBody,
    "description": f"The outputs; with binary outputs, a JSON header of {HEADER_LENGTH} bytes, then each binary "
    "output's bytes",
    "content": {BINARY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


def _json(document: Any) -> Response:
    return Response(json.dumps(document, separators=(",", ":")).encode(), media_type="application/json")


def v2_router(directory: ModelDirectory, predictors: Mapping[str, ServesPredictions], body_limit: int) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"], responses=_ERRORS)

    def metadata(info: ModelInfo) -> dict[str, Any]:
        inputs, outputs = model_tensors(info.inputs, info.outputs, info.request_schema, info.response_schema)
        return model_metadata(info.name, info.version, inputs, outputs)

    def versioned(name: str, version: str | None) -> ModelInfo:
        info = directory.known(name)
        if version is not None and version != info.version:
            raise ProblemError(problems.MODEL_NOT_FOUND, f"Model {name!r} has no version {version!r}; it serves "
                               f"version {info.version!r}", model=name)
        return info

    @router.get("/health/live", response_model=Live)
    async def live() -> Response:
        return _json({"live": True})

    @router.get("/health/ready", response_model=Ready)
    async def ready() -> Response:
        return _json({"ready": True})

    @router.get("", response_model=ServerMetadata)
    async def server() -> Response:
        return _json(server_metadata())

    @router.get("/models/{name}", response_model=ModelMetadata)
    async def model(name: str) -> Response:
        return _json(metadata(versioned(name, None)))

    @router.get("/models/{name}/versions/{version}", response_model=ModelMetadata)
    async def model_version(name: str, version: str) -> Response:
        return _json(metadata(versioned(name, version)))

    @router.get("/models/{name}/ready", response_model=ModelReady)
    async def model_ready(name: str) -> Response:
        return _json({"name": versioned(name, None).name, "ready": True})

    @router.get("/models/{name}/versions/{version}/ready", response_model=ModelReady)
    async def model_version_ready(name: str, version: str) -> Response:
        return _json({"name": versioned(name, version).name, "ready": True})

    async def infer(request: Request, name: str, version: str | None) -> Response:
        versioned(name, version)
        predictor = predictors.get(name)
        if predictor is None:
            raise ProblemError(problems.MISROUTED, f"Model {name!r} is served by its own function; this request "
                               "reached one that does not serve it (check the API's routes)")
        info = directory.known(name)
        try:
            body = await read_body(request, body_limit)
            json_length = header_length(request.headers.get(HEADER_LENGTH), len(body))
            parsed = parse_infer_request(body, json_length)
            forward = getattr(predictor, "infer_v2", None)
            if forward is not None:  # a heavy model's endpoint: the container decodes the tensors
                answer, headers = forward(body, json_length)
            else:
                from inferstack.protocol import inference

                answer, headers = inference.infer(predictor, parsed)  # type: ignore[arg-type]
        except Exception as exc:
            return versioned_failure(exc, request, info=info, version=info.version)
        headers = {MODEL_VERSION_HEADER: info.version, **headers}  # an endpoint's answer names its own
        headers.update(version_headers(info, headers[MODEL_VERSION_HEADER]))
        return Response(answer, headers=headers)

    @router.post("/models/{name}/infer", response_model=InferResponseBody, responses=_INFER_OK,
                 openapi_extra=_INFER_BODY)
    async def model_infer(request: Request, name: str) -> Response:
        return await infer(request, name, None)

    @router.post("/models/{name}/versions/{version}/infer", response_model=InferResponseBody, responses=_INFER_OK,
                 openapi_extra=_INFER_BODY)
    async def model_version_infer(request: Request, name: str, version: str) -> Response:
        return await infer(request, name, version)

    return router

"""`/v1/health`, `/v1/models`, `/v1/models/{name}` and `/v1/models/{name}/predict`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi import Path as FastApiPath
from starlette.concurrency import run_in_threadpool

from inferstack.api import problems
from inferstack.api.deps import read_body
from inferstack.api.errors import to_problem
from inferstack.api.instrument import PROBLEM_KIND
from inferstack.api.predict import predict_body, predict_inputs
from inferstack.api.problems import ProblemError
from inferstack.api.schemas import Health, ModelList, PredictResponse
from inferstack.cache.http import Answer
from inferstack.catalog import ModelInfo
from inferstack.rollout import MODEL_VARIANT_HEADER, MODEL_VERSION_HEADER


class ServesPredictions(Protocol):
    """A model the app can serve: in-process (`inference.session.Predictor`) or on an endpoint
    (`heavy.endpoint.EndpointPredictor`)."""

    def predict(self, raw_inputs: Any) -> dict[str, Any]: ...


class AnswersPredictions(Protocol):
    """A model served with the request's headers in hand (cache, latency budget, fallback:
    `inferstack.cascade.answers.HeavyService`)."""

    def answer(self, raw_inputs: Any, headers: Mapping[str, str] | None) -> Answer: ...


class ModelDirectory:
    """The catalog as the routes see it: public model infos by name, and a 404 for an unknown one."""

    def __init__(self, infos: list[ModelInfo]) -> None:
        self.infos = {m.name: m for m in infos}

    def known(self, name: str) -> ModelInfo:
        info = self.infos.get(name)
        if info is None:
            raise ProblemError(problems.MODEL_NOT_FOUND, f"No model named {name!r}; GET /v1/models lists them",
                               model=name)
        return info


def version_headers(info: ModelInfo, version: str) -> dict[str, str]:
    """Who answered: the version, and for a model with A/B variants the variant it belongs to."""
    variant = next((v.name for v in info.variants or [] if v.version == version), None)
    return {MODEL_VERSION_HEADER: version, **({MODEL_VARIANT_HEADER: variant} if variant else {})}


def versioned_failure(exc: Exception, request: Request, *, info: ModelInfo, version: str) -> Response:
    """A failed predict or infer: its problem (problem+json on /v1, `{"error"}` on /v2) with the version header
    (the metrics middleware counts it for that version, by its problem type)."""
    path = request.url.path
    failed = (getattr(exc, "extensions", None) or {}).get("model_version")  # a heavy container names its own
    version = failed if isinstance(failed, str) else version
    problem = to_problem(exc, context={"path": path, "model": info.name, "version": version})
    request.scope[PROBLEM_KIND] = problem.type.slug
    headers = version_headers(info, version)
    if path.startswith("/v2/"):
        return Response(problem.error_body(), problem.status, headers={**problem.error_headers(), **headers})
    return Response(problem.body(), problem.status, headers={**problem.response_headers(), **headers})


def request_body(model: str) -> dict[str, Any]:
    """A request body the route parses itself (for its own errors), documented by reference."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def models_router(directory: ModelDirectory, predictors: Mapping[str, ServesPredictions], body_limit: int,
                  answerers: Mapping[str, AnswersPredictions] | None = None) -> APIRouter:
    router = APIRouter()
    listing = json.dumps(ModelList(models=list(directory.infos.values())).model_dump(mode="json"),
                         separators=(",", ":")).encode()
    names = sorted(directory.infos)
    # a default value, not an Annotated alias: annotations are strings here (PEP 563), defaults are not
    model_name = FastApiPath(description="A model's name (GET /v1/models lists them)",
                             json_schema_extra={"enum": names} if names else None)

    @router.get("/v1/health", tags=["service"])
    async def health() -> Health:
        return Health()

    @router.get("/v1/models", tags=["models"], response_model=ModelList)
    async def list_models() -> Response:
        return Response(listing, media_type="application/json")

    @router.get("/v1/models/{name}", tags=["models"])
    async def get_model(name: str = model_name) -> ModelInfo:
        return directory.known(name)

    @router.post("/v1/models/{name}/predict", tags=["models"], response_model=PredictResponse,
                 openapi_extra=request_body("PredictRequest"))
    async def predict(request: Request, name: str = model_name) -> Response:
        info = directory.known(name)
        answerer = (answerers or {}).get(name)
        if answerer is not None:
            try:
                inputs = predict_inputs(await read_body(request, body_limit), body_limit)
                answer = await run_in_threadpool(answerer.answer, inputs, dict(request.headers))
            except Exception as exc:
                return versioned_failure(exc, request, info=info, version=info.version)
            answer.headers.setdefault(MODEL_VERSION_HEADER, info.version)
            return Response(answer.body, status_code=answer.status, headers=answer.headers)
        predictor = predictors.get(name)
        if predictor is None:
            raise ProblemError(problems.MISROUTED, f"Model {name!r} is served by its own function; this request "
                               "reached one that does not serve it (check the API's routes)")
        version = info.version
        try:
            inputs = predict_inputs(await read_body(request, body_limit), body_limit)
            versioned = getattr(predictor, "predict_versioned", None)  # an endpoint says which version answered
            outputs, version = versioned(inputs) if versioned else (predictor.predict(inputs), info.version)
        except Exception as exc:
            return versioned_failure(exc, request, info=info, version=version)
        return Response(predict_body(info.name, version, outputs), media_type="application/json",
                        headers=version_headers(info, version))

    return router

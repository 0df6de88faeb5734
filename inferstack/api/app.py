"""The FastAPI application behind every HTTP route.

One factory serves both kinds of function: the API function gets the catalog and no predictors (it never
imports onnxruntime); a predict function gets the one predictor it serves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import FastAPI, Header, Request, Response
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferstack import __version__, env
from inferstack.api import problems
from inferstack.api.predict import ProblemError, parse_json_body, predict_body, predict_inputs
from inferstack.api.problems import PROBLEM_JSON, ProblemType
from inferstack.api.schemas import Health, ModelList, PredictRequest, PredictResponse, Problem
from inferstack.catalog import Catalog, ModelInfo
from inferstack.heavy.exceptions import EndpointError
from inferstack.inference.exceptions import InputValidationError
from inferstack.observability import logger

if TYPE_CHECKING:
    from inferstack.jobs.service import JobService


class ServesPredictions(Protocol):
    """A model the app can serve: in-process (`inference.session.Predictor`) or on an endpoint
    (`heavy.endpoint.EndpointPredictor`)."""

    def predict(self, raw_inputs: Any) -> dict[str, Any]: ...

#: Seconds a client is told to wait when a model's queue is full, or the job store cannot be reached.
QUEUE_FULL_RETRY_AFTER_S = 5
JOB_STORE_RETRY_AFTER_S = 2

_STATUS_PROBLEMS = {p.status: p for p in (problems.NOT_FOUND, problems.METHOD_NOT_ALLOWED,
                                          problems.PAYLOAD_TOO_LARGE)}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}} for code in (400, 403, 404, 413, 422, 429, 500)
}


def problem_response(problem: ProblemType, detail: str, *, headers: Mapping[str, str] | None = None,
                     **extensions: Any) -> Response:
    return Response(problem.encode(detail, **extensions), status_code=problem.status, media_type=PROBLEM_JSON,
                    headers=headers)


def _json(data: Any) -> Response:
    return Response(json.dumps(data, separators=(",", ":")).encode(), media_type="application/json")


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.problem, exc.detail, **exc.extensions)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        problem = _STATUS_PROBLEMS.get(exc.status_code) or ProblemType("http-error", exc.status_code, "HTTP error")
        return problem_response(problem, str(exc.detail), headers=exc.headers)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{"input": ".".join(str(p) for p in e["loc"]), "detail": e["msg"]} for e in exc.errors()]
        return problem_response(problems.INVALID_REQUEST, "; ".join(f"{e['input']}: {e['detail']}" for e in errors),
                                errors=errors)

    async def on_inputs(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, InputValidationError)
        return problem_response(problems.INVALID_INPUT, str(exc), errors=[p.as_dict() for p in exc.problems])

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(problems.INTERNAL, "An internal error occurred; it has been logged.")

    async def on_endpoint(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, EndpointError)
        problem = ProblemType(exc.problem.slug, exc.status, exc.problem.title)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return problem_response(problem, exc.detail, headers=headers, **exc.extensions)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(EndpointError, on_endpoint)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InputValidationError, on_inputs)
    app.add_exception_handler(Exception, on_crash)


def max_body_bytes() -> int:
    return int(os.environ.get(env.MAX_BODY_BYTES) or 5 * 1024 * 1024)


def caller_key_id(request: Request) -> str:
    """The API key ID that API Gateway authenticated (jobs belong to it)."""
    event = request.scope.get("aws.event") or {}
    identity = (event.get("requestContext") or {}).get("identity") or {}
    key_id = identity.get("apiKeyId")
    if not key_id:
        raise ProblemError(problems.FORBIDDEN, "Jobs need an API key (x-api-key)")
    return str(key_id)


def create_app(catalog: Catalog, predictors: Mapping[str, ServesPredictions] | None = None, *,
               jobs: JobService | None = None, max_body: int | None = None) -> FastAPI:
    predictors = predictors or {}
    body_limit = max_body or max_body_bytes()
    app = FastAPI(
        title="inferstack",
        version=__version__,
        description="ONNX models served on AWS Lambda, SQS and SageMaker. Every route but /v1/health needs "
        "an API key in the `x-api-key` header. Errors are RFC 9457 problem+json.",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
        responses=_ERROR_RESPONSES,
    )
    install_problem_handlers(app)
    model_infos = {m.name: m.public() for m in catalog.models}
    listing = ModelList(models=list(model_infos.values())).model_dump(mode="json")

    def known(name: str) -> ModelInfo:
        info = model_infos.get(name)
        if info is None:
            raise ProblemError(problems.MODEL_NOT_FOUND, f"No model named {name!r}; GET /v1/models lists them",
                               model=name)
        return info

    @app.get("/v1/health", tags=["service"])
    async def health() -> Health:
        return Health()

    @app.get("/v1/models", tags=["models"], response_model=ModelList)
    async def list_models() -> Response:
        return _json(listing)

    names = sorted(model_infos)
    # a default value, not an Annotated alias: annotations are strings here (PEP 563), defaults are not
    model_name = FastApiPath(description="A model's name (GET /v1/models lists them)",
                             json_schema_extra={"enum": names} if names else None)

    @app.get("/v1/models/{name}", tags=["models"])
    async def get_model(name: str = model_name) -> ModelInfo:
        return known(name)

    @app.post("/v1/models/{name}/predict", tags=["models"], response_model=PredictResponse,
              openapi_extra=_body("PredictRequest"))
    async def predict(request: Request, name: str = model_name) -> Response:
        info = known(name)
        predictor = predictors.get(name)
        if predictor is None:
            raise ProblemError(problems.MISROUTED, f"Model {name!r} is served by its own function; this request "
                               "reached one that does not serve it (check the API's routes)")
        outputs = predictor.predict(predict_inputs(await request.body(), body_limit))
        return Response(predict_body(info.name, info.version, outputs), media_type="application/json")

    install_job_routes(app, known, jobs, body_limit)
    _document_bodies(app, list(model_infos.values()))
    return app


def _body(model: str) -> dict[str, Any]:
    """A request body the route parses itself (for its own errors), documented by reference."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def _document_bodies(app: FastAPI, models: list[ModelInfo]) -> None:
    """Put the self-parsed request bodies' schemas (and what they refer to) into the document's components,
    and give each model with a handler its own predict operation, with its request and response schemas."""
    from inferstack.jobs.schemas import JobRequest

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictRequest, JobRequest):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        if models:
            components["JobRequest"]["properties"]["model"]["enum"] = [m.name for m in models]
        for info in models:
            if info.request_schema is not None:
                document["paths"][f"/v1/models/{info.name}/predict"] = _handler_operation(info, components)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _component(schema: dict[str, Any], name: str, components: dict[str, Any]) -> dict[str, Any]:
    """Add a handler's JSON schema to the components as `name` (its `$defs` as `name` + def name); returns a
    reference to it."""
    schema = json.loads(json.dumps(schema))
    defs = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = f"#/components/schemas/{name}{ref.removeprefix('#/$defs/')}"
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for key, value in defs.items():
        components[f"{name}{key}"] = rewrite(value)
    components[name] = rewrite(schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _handler_operation(info: ModelInfo, components: dict[str, Any]) -> dict[str, Any]:
    """The predict operation of a model with a handler: `{"inputs": <its Request>}` in,
    `{"model", "version", "outputs": <its Response>}` out."""
    prefix = "".join(part.capitalize() for part in info.name.replace("_", "-").split("-"))
    assert info.request_schema is not None
    inputs = _component(info.request_schema, f"{prefix}Inputs", components)
    outputs = _component(info.response_schema, f"{prefix}Outputs", components) if info.response_schema \
        else {"type": "object"}
    components[f"{prefix}PredictRequest"] = {
        "type": "object", "required": ["inputs"], "additionalProperties": False, "properties": {"inputs": inputs}}
    components[f"{prefix}PredictResponse"] = {
        "type": "object", "required": ["model", "version", "outputs"],
        "properties": {"model": {"type": "string"}, "version": {"type": "string"}, "outputs": outputs}}
    problem = {"$ref": "#/components/schemas/Problem"}
    errors = {str(code): {"description": title, "content": {PROBLEM_JSON: {"schema": problem}}}
              for code, title in ((400, "Malformed JSON"), (403, "Missing or invalid API key"),
                                  (413, "Body too large"), (422, "Inputs do not match the model's request schema"),
                                  (429, "Throttled"), (500, "Internal error"))}
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{prefix}PredictRequest"}}
    example = (info.request_schema.get("examples") or [None])[0]
    if example is not None:
        media["example"] = {"inputs": example}
    body = {"required": True, "content": {"application/json": media}}
    return {"post": {
        "tags": ["models"], "summary": f"Predict with {info.name}", "operationId": f"predict_{prefix.lower()}",
        "description": f"{info.name} has its own request and response schemas (its handler's).",
        "requestBody": body,
        "responses": {"200": {"description": "The model's outputs", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{prefix}PredictResponse"}}}}, **errors},
    }}


def install_job_routes(app: FastAPI, known: Callable[[str], ModelInfo], jobs: JobService | None,
                       body_limit: int) -> None:
    from inferstack.jobs.exceptions import (
        IdempotencyConflictError,
        JobNotFoundError,
        QueueFullError,
        UnsafeWebhookUrlError,
    )
    from inferstack.jobs.schemas import JobAccepted, JobRequest, JobView

    def is_aws_failure(exc: Exception) -> bool:
        # imported here: a predict function builds this app without the jobs tier, and without boto3
        from botocore.exceptions import BotoCoreError, ClientError

        return isinstance(exc, BotoCoreError | ClientError)

    def unavailable(exc: Exception) -> Response:
        logger.warning("the job store is unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return problem_response(problems.UNAVAILABLE, "The job store is unavailable; retry shortly",
                                headers={"Retry-After": str(JOB_STORE_RETRY_AFTER_S)})

    def service() -> JobService:
        if jobs is None:
            raise ProblemError(problems.UNAVAILABLE, "The jobs tier is not configured for this function")
        return jobs

    @app.post("/v1/jobs", tags=["jobs"], status_code=202, response_model=JobAccepted,
              responses={409: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
              openapi_extra=_body("JobRequest"))
    async def submit_job(request: Request,
                         idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> Response:
        raw = await request.body()
        if len(raw) > body_limit:
            raise ProblemError(problems.PAYLOAD_TOO_LARGE, f"The body is {len(raw)} bytes; at most {body_limit}")
        try:
            body = JobRequest.model_validate(parse_json_body(raw))
        except ValidationError as exc:
            errors = [{"input": ".".join(str(p) for p in e["loc"]), "detail": e["msg"]} for e in exc.errors()]
            raise ProblemError(problems.INVALID_REQUEST, "; ".join(f"{e['input']}: {e['detail']}" for e in errors),
                               errors=errors) from None
        known(body.model)
        owner = caller_key_id(request)
        try:
            job, created = service().submit(body, owner=owner, idempotency_key=idempotency_key)
        except UnsafeWebhookUrlError as exc:
            raise ProblemError(problems.UNSAFE_WEBHOOK, str(exc),
                               errors=[{"input": "webhook.url", "detail": str(exc)}]) from None
        except IdempotencyConflictError as exc:
            raise ProblemError(problems.IDEMPOTENCY_CONFLICT, str(exc), job_id=exc.job_id) from None
        except QueueFullError as exc:
            return problem_response(problems.QUEUE_FULL, str(exc),
                                    headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)})
        except Exception as exc:
            if is_aws_failure(exc):
                return unavailable(exc)
            raise
        link = f"/v1/jobs/{job.job_id}"
        accepted = {"job_id": job.job_id, "status": job.status, "links": {"self": link}}
        headers = {"Location": link, **({} if created else {"Idempotent-Replayed": "true"})}
        return Response(json.dumps(accepted).encode(), status_code=202, media_type="application/json",
                        headers=headers)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], response_model=JobView)
    async def get_job(job_id: str, request: Request) -> Response:
        owner = caller_key_id(request)
        try:
            view = service().view(job_id, owner=owner)
        except JobNotFoundError:
            raise ProblemError(problems.JOB_NOT_FOUND, f"No job {job_id!r} for this API key", job_id=job_id) from None
        except Exception as exc:
            if is_aws_failure(exc):
                return unavailable(exc)
            raise
        return Response(view.model_dump_json().encode(), media_type="application/json")

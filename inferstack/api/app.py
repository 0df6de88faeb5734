"""The FastAPI application behind every HTTP route of the API function (and a predict function's other routes).

`create_app` composes one `APIRouter` per capability (`inferstack.api.routes`); every error goes through
`inferstack.api.errors.to_problem`. The API function gets the catalog and no predictors (it never imports
onnxruntime); a predict function gets the one predictor it serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from inferstack import __version__
from inferstack.api import problems
from inferstack.api.deps import max_body_bytes
from inferstack.api.errors import ANSWERED, Problem, to_problem
from inferstack.api.instrument import PROBLEM_KIND, ModelMetricsMiddleware
from inferstack.api.openapi import document_bodies
from inferstack.api.problems import PROBLEM_JSON, ProblemType
from inferstack.api.routes.batches import batches_router
from inferstack.api.routes.cascades import cascades_router
from inferstack.api.routes.jobs import jobs_router
from inferstack.api.routes.models import AnswersPredictions, ModelDirectory, ServesPredictions, models_router
from inferstack.api.routes.v2 import v2_router
from inferstack.api.schemas import PredictRequest
from inferstack.api.schemas import Problem as ProblemModel
from inferstack.batches.schemas import BatchRequest
from inferstack.catalog import Catalog
from inferstack.jobs.schemas import JobRequest
from inferstack.protocol.schemas import InferRequestBody

if TYPE_CHECKING:
    from inferstack.batches.service import BatchService
    from inferstack.jobs.service import JobService

__all__ = ["ServesPredictions", "create_app", "install_problem_handlers", "problem_response"]

_STATUS_PROBLEMS = {p.status: p for p in (problems.NOT_FOUND, problems.METHOD_NOT_ALLOWED,
                                          problems.PAYLOAD_TOO_LARGE)}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemModel, "content": {PROBLEM_JSON: {}}} for code in (400, 403, 404, 413, 422, 429, 500)
}


def problem_response(problem: Problem, path: str = "") -> Response:
    """problem+json; on the Open Inference Protocol's paths (`/v2`), its `{"error": ...}` with the same status."""
    if path == "/v2" or path.startswith("/v2/"):
        return Response(problem.error_body(), status_code=problem.status, headers=problem.error_headers())
    return Response(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> Response:
        event = request.scope.get("aws.event") or {}
        context = {"path": request.url.path, "request_id": (event.get("requestContext") or {}).get("requestId")}
        problem = to_problem(exc, context=context)
        request.scope[PROBLEM_KIND] = problem.type.slug
        return problem_response(problem, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = _STATUS_PROBLEMS.get(exc.status_code) or ProblemType("http-error", exc.status_code, "HTTP error")
        request.scope[PROBLEM_KIND] = kind.slug
        return problem_response(Problem(kind, str(exc.detail), headers=dict(exc.headers or {})), request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{"input": ".".join(str(p) for p in e["loc"]), "detail": e["msg"]} for e in exc.errors()]
        request.scope[PROBLEM_KIND] = problems.INVALID_REQUEST.slug
        return problem_response(Problem(problems.INVALID_REQUEST, "; ".join(f"{e['input']}: {e['detail']}"
                                                                            for e in errors), {"errors": errors}),
                                request.url.path)

    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    # one handler per answered class, for Starlette's ExceptionMiddleware to answer: a handler for `Exception`
    # alone sits in ServerErrorMiddleware, which answers and then re-raises (Mangum and uvicorn log a traceback)
    for cls in (*ANSWERED, *_aws_failures()):
        app.add_exception_handler(cls, on_error)
    app.add_exception_handler(Exception, on_error)


def _aws_failures() -> tuple[type[Exception], ...]:
    """botocore's two roots and boto3's, where installed: answered 503 with a warning, not a traceback."""
    try:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - the API function always has boto3
        return ()
    return BotoCoreError, ClientError, Boto3Error


class _App(FastAPI):
    """FastAPI with the per-model metrics outermost, where they see the status of every answer, those of the
    handlers of unexpected exceptions too (Starlette answers those in its outermost middleware)."""

    def __init__(self, *, versions: Mapping[str, str], **kwargs: Any) -> None:
        self.model_versions = dict(versions)
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> Any:
        return ModelMetricsMiddleware(super().build_middleware_stack(), self.model_versions)


def create_app(catalog: Catalog, predictors: Mapping[str, ServesPredictions] | None = None, *,
               jobs: JobService | None = None, batches: BatchService | None = None,
               max_body: int | None = None, routers: Sequence[APIRouter] = (),
               answerers: Mapping[str, AnswersPredictions] | None = None) -> FastAPI:
    """The app for a catalog. `routers`: further capabilities' routes, composed after the built-in ones."""
    body_limit = max_body or max_body_bytes()
    app = _App(
        versions={m.name: m.version for m in catalog.models},
        title="inferstack",
        version=__version__,
        description="ONNX models served on AWS Lambda, SQS and SageMaker. Every route but the health checks and the "
        "docs needs "
        "an API key in the `x-api-key` header. Errors are RFC 9457 problem+json on /v1; /v2 speaks the Open "
        "Inference Protocol (KServe v2, with the binary data extension), whose errors are {\"error\": \"...\"}. "
        "Bodies may be sent gzip- or deflate-encoded (Content-Encoding); responses are compressed for clients "
        "that send Accept-Encoding.",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
        redoc_url=None,
        responses=_ERROR_RESPONSES,
    )
    install_problem_handlers(app)
    directory = ModelDirectory([m.public() for m in catalog.models])
    app.include_router(models_router(directory, predictors or {}, body_limit, answerers))
    app.include_router(jobs_router(directory, jobs, body_limit, [c.name for c in catalog.cascades]))
    app.include_router(batches_router(directory, batches, body_limit))
    app.include_router(v2_router(directory, predictors or {}, body_limit))
    app.include_router(cascades_router(catalog.cascades))
    for router in routers:
        app.include_router(router)
    document_bodies(app, list(directory.infos.values()), [PredictRequest, JobRequest, BatchRequest,
                                                                   InferRequestBody])
    return app

"""Lambda entry point of one light model: `POST /v1/models/{name}/predict` and the Open Inference Protocol's
`POST /v2/models/{name}[/versions/{version}]/infer`.

The model (named by `$INFERSTACK_MODEL`) is loaded and warmed up at import, during the function's init
phase (or before the SnapStart snapshot), never inside a request.

Both routes are answered straight from the API Gateway event: the body checks shared with the FastAPI
app (`inferstack.api.predict`, `inferstack.protocol`), validation and inference (`inferstack.inference`, through
the model's handler where it has one), errors (problem+json on /v1, `{"error": ...}` on /v2); neither FastAPI nor
pydantic is imported on this path (unless the model's handler uses pydantic), which keeps the cold start near
that of a bare onnxruntime process and the warm request near a bare `session.run`. Anything else that reaches
the function (API Gateway routes nothing else here) goes to the full FastAPI app, built on first use.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from inferstack import env
from inferstack.api.errors import to_problem
from inferstack.api.predict import predict_body, predict_inputs
from inferstack.cache.http import Answer, header, serve
from inferstack.cache.key import CacheKey, digest_arrays, digest_json
from inferstack.cache.wiring import cache_from_env
from inferstack.inference.spec import load_model_entry
from inferstack.observability import emf as m
from inferstack.observability import registry, xray
from inferstack.observability.emf import ModelMetrics
from inferstack.protocol import inference as v2
from inferstack.protocol.events import check_version, event_body, infer_request, proxy_result
from inferstack.rollout import MODEL_VARIANT_HEADER, MODEL_VERSION_HEADER
from inferstack.rollout.variants import Arm, Variants

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from inferstack.api.lambda_adapter import LambdaHandler

catalog_path = os.environ.get(env.CATALOG_PATH)
entry, model_root = load_model_entry(path=catalog_path)
#: The model, or its A/B variants, each loaded here (`inferstack.rollout.variants`); each request picks one.
variants = Variants.load(entry, model_root)
predictor = variants.arms[0].predictor
body_limit = int(os.environ.get(env.MAX_BODY_BYTES) or 5 * 1024 * 1024)
#: The model's result cache (None unless the manifest gives it one): an LRU in this execution environment.
cache = cache_from_env(entry.name)
predict_path = f"/v1/models/{entry.name}/predict"
infer_paths = (f"/v2/models/{entry.name}/infer", f"/v2/models/{entry.name}/versions/")


def _response(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**headers, "content-length": str(len(body))},
            "multiValueHeaders": {}, "body": body.decode(), "isBase64Encoded": False}


@dataclass(frozen=True)
class Served:
    """What an answer of one arm carries, built once: its predictor, headers and metrics."""

    arm: Arm
    version: dict[str, str]
    json: dict[str, str]
    metrics: ModelMetrics

    @classmethod
    def of(cls, arm: Arm) -> Served:
        names = {MODEL_VERSION_HEADER: arm.version, **({MODEL_VARIANT_HEADER: arm.name} if arm.name else {})}
        return cls(arm, names, {"content-type": "application/json", **names}, registry.model(entry.name, arm.version))


served = [Served.of(a) for a in variants.arms]
xray.tracer()  # where tracing is on, the X-Ray SDK loads here, in the init phase, not in the first request


def _context(event: dict[str, Any], context: LambdaContext | None, version: str) -> dict[str, Any]:
    """What an unexpected error's log line says about the request, the version that failed included."""
    return {"path": event.get("path"), "model": entry.name, "version": version,
            "function_request_id": getattr(context, "aws_request_id", None)}


def predict(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    chosen = served[variants.pick_index()]
    xray.annotate(model=entry.name, version=chosen.arm.version)
    predictor, model_metrics = chosen.arm.predictor, chosen.metrics
    try:
        raw = predict_inputs(event_body(event, body_limit), body_limit)
        prepared = predictor.prepare(raw)
        if cache is None:  # the hot path, straight
            ran = time.perf_counter()
            outputs = predictor.run(prepared.arrays)
            responding = time.perf_counter()
            body = predict_body(entry.name, chosen.arm.version, predictor.respond(prepared, outputs))
    except Exception as exc:
        problem = to_problem(exc, context=_context(event, context, chosen.arm.version))
        model_metrics.request(problem.status, m.elapsed_ms(started), kind=problem.type.slug)
        return _response(problem.status, {**problem.response_headers(), **chosen.version}, problem.body())
    if cache is None:
        response = _response(200, chosen.json, body)
        model_metrics.request(200, m.elapsed_ms(started), rows=prepared.rows, inference_ms=(responding - ran) * 1000)
        model_metrics.add(m.PREPROCESS_LATENCY, (ran - started) * 1000)
        model_metrics.add(m.POSTPROCESS_LATENCY, m.elapsed_ms(responding))
        return response
    return _predict_cached(event, context, started=started, chosen=chosen, raw=raw, prepared=prepared)


def _predict_cached(event: dict[str, Any], context: LambdaContext | None, *, started: float, chosen: Served,
                    raw: Any, prepared: Any) -> dict[str, Any]:
    """A model with a result cache: 304, a hit, or computed and kept (`inferstack.cache.http.serve`)."""
    assert cache is not None
    predictor, model_metrics = chosen.arm.predictor, chosen.metrics
    timing: dict[str, float] = {}
    try:
        def compute() -> Answer:
            timing["ran"] = time.perf_counter()
            outputs = predictor.run(prepared.arrays)
            timing["responding"] = time.perf_counter()
            result = predictor.respond(prepared, outputs)
            return Answer(200, predict_body(entry.name, chosen.arm.version, result), dict(chosen.json))

        answer = serve(cache, _key(chosen.arm, raw, prepared.arrays), header(event.get("headers"), "if-none-match"),
                       compute)
    except Exception as exc:
        problem = to_problem(exc, context=_context(event, context, chosen.arm.version))
        model_metrics.request(problem.status, m.elapsed_ms(started), kind=problem.type.slug)
        return _response(problem.status, {**problem.response_headers(), **chosen.version}, problem.body())
    response = _response(answer.status, {**answer.headers, **chosen.version}, answer.body)
    model_metrics.add(m.CACHE_MISSES if "ran" in timing else m.CACHE_HITS)
    if "ran" not in timing:  # answered from the cache
        model_metrics.request(answer.status, m.elapsed_ms(started), rows=prepared.rows)
        return response
    ran, responding = timing["ran"], timing["responding"]
    model_metrics.request(200, m.elapsed_ms(started), rows=prepared.rows, inference_ms=(responding - ran) * 1000)
    model_metrics.add(m.PREPROCESS_LATENCY, (ran - started) * 1000)
    model_metrics.add(m.POSTPROCESS_LATENCY, m.elapsed_ms(responding))
    return response


def _key(arm: Arm, raw: Any, arrays: dict[str, Any]) -> CacheKey:
    """The key hashes the validated tensors (through a handler: the request's canonical JSON), per version (an
    A/B variant's answers are its own)."""
    digest = digest_arrays(arrays) if arm.predictor.handler is None else \
        digest_json(raw, [i.name for i in arm.predictor.inputs])
    return CacheKey(entry.name, arm.version, digest)


def infer(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    """The Open Inference Protocol's infer, JSON or binary tensors, straight from the event."""
    started = time.perf_counter()
    chosen = served[variants.pick_index()]
    xray.annotate(model=entry.name, version=chosen.arm.version)
    try:
        check_version(event.get("path") or "", entry.name, entry.version)
        body, headers = v2.infer(chosen.arm.predictor, infer_request(event, body_limit))
    except Exception as exc:
        problem = to_problem(exc, context=_context(event, context, chosen.arm.version))
        chosen.metrics.request(problem.status, m.elapsed_ms(started), kind=problem.type.slug)
        return proxy_result(problem.status, {**problem.error_headers(), **chosen.version}, problem.error_body())
    chosen.metrics.request(200, m.elapsed_ms(started))
    return proxy_result(200, {**headers, **chosen.version}, body)


@functools.cache
def _full_app() -> LambdaHandler:
    from inferstack.api.app import create_app
    from inferstack.api.lambda_adapter import lambda_handler
    from inferstack.catalog import Catalog, load_catalog

    catalog, _ = load_catalog(catalog_path)
    full = catalog.get(entry.name)
    assert full is not None
    return lambda_handler(create_app(Catalog(models=[full]), {entry.name: predictor}))


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # No Powertools `inject_lambda_context` here: it costs more per request than the inference itself on a
    # small model; the request ID is attached where something is logged.
    if event.get("httpMethod") == "POST":
        path = event.get("path") or ""
        if path == predict_path:
            with xray.traced("## predict"):  # a no-op unless tracing is on (on Lambda)
                return _flushed(predict(event, context))
        if path == infer_paths[0] or (path.startswith(infer_paths[1]) and path.endswith("/infer")):
            with xray.traced("## infer"):
                return _flushed(infer(event, context))
    return _full_app()(event, context)


def _flushed(result: dict[str, Any]) -> dict[str, Any]:
    """The invocation's metrics go out before it returns (the environment may be frozen after)."""
    for arm in served:
        arm.metrics.flush()
    return result

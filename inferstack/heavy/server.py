"""The heavy tier's SageMaker inference container: `GET /ping` and `POST /invocations` on port 8080.

    python -m inferstack.heavy.server [serve]

SageMaker starts the container with the argument `serve`. The model directory (`$SM_MODEL_DIR`, default
`/opt/ml/model`) holds `model.onnx` and `inferstack.json` (name, version, batching, handler), and for a model
with a handler `code/`: the handler's directory, with the packages its `requirements.txt` names installed in
`code/lib/` for the container's platform (so one image serves every model, and network isolation holds).
The model is loaded and warmed up before the server accepts connections, so `/ping` answers 200 only once it
can serve. onnxruntime runs with the CUDA provider where a GPU is present and the CPU provider otherwise; the
choice is logged.
`/invocations` takes the predict body (`{"inputs": ...}`) and answers the predict response; with the content type
`application/vnd.sagemaker-triton.binary+json;json-header-size=N` it takes an Open Inference Protocol infer
request (JSON or binary tensors, `inferstack.protocol`) and answers in kind; with `application/jsonlines`
(a Batch Transform job's records) one row per line and one answer line per line (`inferstack.heavy.jsonlines`).
All become arrays before the dynamic batcher, which stacks them alike. Bad input gets a 4xx problem+json, never
a 5xx. SIGTERM stops accepting connections and finishes the requests in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.util
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inferstack import env
from inferstack.api import problems
from inferstack.api.body import read_limited
from inferstack.api.errors import Problem, to_problem
from inferstack.api.predict import predict_body, predict_inputs
from inferstack.catalog import CatalogEntry
from inferstack.heavy import jsonlines
from inferstack.heavy.batching import DynamicBatcher
from inferstack.heavy.instances import fit_memory, load_instances, plan
from inferstack.observability import emf, logger, registry
from inferstack.protocol.codec import HEADER_LENGTH, header_length, parse_infer_request
from inferstack.protocol.sagemaker import header_size, is_v2, v2_content_type
from inferstack.rollout import CUSTOM_ATTRIBUTES_HEADER, MODEL_VERSION_HEADER, version_attribute

if TYPE_CHECKING:
    from inferstack.inference.session import Arrays, Predictor, Prepared

CONFIG_FILE = "inferstack.json"
MODEL_FILE = "model.onnx"
DEFAULT_PORT = 8080
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
METRICS_FLUSH_S = 1.0


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    max_batch_size: int
    max_delay_ms: float
    #: Requests with bodies larger than this are tokenized and encoded in a worker thread.
    offload_bytes: int = 16 * 1024
    #: Model instances on a CPU (`heavy.instances`): a number or "auto".
    instances: int | str = "auto"

    @classmethod
    def from_env(cls) -> ServerConfig:
        model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
        raw = json.loads((model_dir / CONFIG_FILE).read_text())
        batching = raw.get("batching", {})
        size = os.environ.get("INFERSTACK_MAX_BATCH_SIZE") or batching.get("max_batch_size", 32)
        delay = os.environ.get("INFERSTACK_MAX_DELAY_MS") or batching.get("max_delay_ms", 5)
        offload = os.environ.get(env.HEAVY_OFFLOAD_BYTES)
        return cls(model_dir=model_dir, max_batch_size=int(size), max_delay_ms=float(delay),
                   instances=batching.get("instances", "auto"),
                   **({"offload_bytes": int(offload)} if offload else {}))


def providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available \
        else ["CPUExecutionProvider"]
    return chosen


def _answer(predictor: Predictor, prepared: Prepared, outputs: Arrays) -> bytes:
    return predict_body(predictor.name, predictor.version, predictor.respond(prepared, outputs))


def _problem(problem: Problem, version: str) -> Response:
    """The container's problem, naming its version (`model_version`): SageMaker passes no header of a failed
    invocation back, only its body, and the proxy counts the failure for the version that failed."""
    body = problem.type.encode(problem.detail, **{**problem.extensions, "model_version": version})
    return Response(body, status_code=problem.status, headers=problem.response_headers())


async def _flush_every(seconds: float) -> None:
    """The container's metrics, as EMF lines in its log, every few seconds."""
    while True:
        await asyncio.sleep(seconds)
        registry.flush()


def create_app(config: ServerConfig) -> Starlette:
    from inferstack.inference.session import Predictor, available_vcpus

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        entry = CatalogEntry.model_validate({**json.loads((config.model_dir / CONFIG_FILE).read_text()),
                                             "artifact": MODEL_FILE, "inputs": [], "outputs": []})
        # No spinning: the event loop that parses and answers requests needs the CPU between batches.
        predictor = Predictor.load(entry, config.model_dir, providers=providers(), spin=False, warm_up=False)
        session = predictor.session
        cuda = "CUDAExecutionProvider" in session.get_providers()
        logger.info("model loaded", extra={"model": entry.name, "version": entry.version,
                                           "providers": session.get_providers(),
                                           "cuda": cuda,
                                           "handler": entry.handler,
                                           "max_batch_size": config.max_batch_size,
                                           "max_delay_ms": config.max_delay_ms,
                                           "pad": sorted(predictor.padding.values) if predictor.padding else None})
        predictor.warm_up()
        metrics = registry.model(entry.name, entry.version)
        # SageMaker's log is not EMF-extracted: the deployment's metric filters read these sums instead
        metrics.summaries = frozenset({emf.BATCH_SIZE, emf.QUEUE_DEPTH})

        def on_batch(rows: int, waiting: int, run_ms: float) -> None:
            metrics.add(emf.BATCH_SIZE, rows)
            metrics.add(emf.QUEUE_DEPTH, waiting)
            metrics.add(emf.INFERENCE_LATENCY, run_ms)

        count, threads = plan(config.instances, cuda=cuda, vcpus=available_vcpus())
        count = fit_memory(count, (config.model_dir / MODEL_FILE).stat().st_size)
        instances = load_instances(entry, config.model_dir, count, threads, providers())
        logger.info("model instances", extra={"instances": count, "threads_each": threads})
        batcher = DynamicBatcher(predictor.run, max_batch_size=config.max_batch_size,
                                 max_delay_ms=config.max_delay_ms, on_batch=on_batch, padding=predictor.padding,
                                 instances=[i.run for i in instances] or None)
        batcher.start()
        # who answered, through SageMaker's custom attributes (the only answer header it passes back)
        answered_by = {CUSTOM_ATTRIBUTES_HEADER: version_attribute(entry.version), MODEL_VERSION_HEADER: entry.version}
        flusher = asyncio.get_running_loop().create_task(_flush_every(METRICS_FLUSH_S))
        # Everything loaded so far lives as long as the process: out of the collector's sight, so that a full
        # collection scans only what requests allocate (unfrozen, one paused all 32 requests in flight for up to
        # 24 ms; frozen, minilm's p99 at 32 clients fell from 172-190 to 151-156 ms in the same runs)
        gc.collect()
        gc.freeze()
        state.update(predictor=predictor, batcher=batcher, ready=True, answered_by=answered_by, metrics=metrics)
        yield
        state["ready"] = False
        await batcher.stop()
        flusher.cancel()
        registry.flush()
        logger.info("stopped", extra={"requests": batcher.stats.requests,
                                      "inference_calls": batcher.stats.inference_calls})

    async def ping(_: Request) -> Response:
        return Response(status_code=200 if state.get("ready") else 503)

    async def infer_v2(request: Request, predictor: Predictor, batcher: DynamicBatcher) -> Response:
        """An Open Inference Protocol infer request: arrays before the batcher, like /v1's."""
        from inferstack.protocol import inference as v2
        from inferstack.protocol.tensors import encode_response

        with batcher.arriving():
            body = await read_limited(request, MAX_BODY_BYTES)
            parsed = parse_infer_request(body, header_length(str(header_size(request.headers.get("content-type"))
                                                                 or ""), len(body)))
            off_loop = predictor.handler is not None and len(body) > config.offload_bytes
            prepared = await asyncio.to_thread(v2.prepare, predictor, parsed) if off_loop \
                else v2.prepare(predictor, parsed)
        outputs = await batcher.submit(prepared.arrays)
        arrays = await asyncio.to_thread(v2.respond, predictor, prepared, outputs) if off_loop \
            else v2.respond(predictor, prepared, outputs)
        answer, headers = encode_response(parsed, arrays, model=predictor.name, version=predictor.version)
        size = headers.get(HEADER_LENGTH)
        return Response(answer, media_type=v2_content_type(int(size)) if size else "application/json",
                        headers=state["answered_by"])

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        response = await _invocations(request)
        problem = response.headers.get("content-type") == problems.PROBLEM_JSON
        kind = json.loads(bytes(response.body)).get("type", "").removeprefix(problems.TYPE_PREFIX) if problem else None
        state["metrics"].request(response.status_code, emf.elapsed_ms(started), kind=kind)
        return response

    async def _invocations(request: Request) -> Response:
        predictor: Predictor = state["predictor"]
        batcher: DynamicBatcher = state["batcher"]
        if jsonlines.is_jsonlines(request.headers.get("content-type")):
            try:
                with batcher.arriving():
                    raw = await read_limited(request, jsonlines.max_payload_bytes())
                body = await jsonlines.score(raw, predictor, batcher)
            except Exception as exc:
                return _problem(to_problem(exc, context={"model": predictor.name}), predictor.version)
            return Response(body, media_type=jsonlines.JSONLINES_TYPES[0], headers=state["answered_by"])
        if is_v2(request.headers.get("content-type")):
            try:
                return await infer_v2(request, predictor, batcher)
            except Exception as exc:
                return _problem(to_problem(exc, context={"model": predictor.name}), predictor.version)
        try:
            with batcher.arriving():  # an idle model waits for it only while it is on its way
                raw = await read_limited(request, MAX_BODY_BYTES)
                inputs = predict_inputs(raw, MAX_BODY_BYTES)
                # A handler's pre- and post-processing (tokenizers, numpy, JSON) of a large request may take
                # milliseconds: off the event loop. For a small one the hop to a thread costs more than the work.
                off_loop = predictor.handler is not None and len(raw) > config.offload_bytes
                prepared = await asyncio.to_thread(predictor.prepare, inputs) if off_loop \
                    else predictor.prepare(inputs)
            outputs = await batcher.submit(prepared.arrays)
            if off_loop:
                body = await asyncio.to_thread(_answer, predictor, prepared, outputs)
            else:
                body = _answer(predictor, prepared, outputs)
        except Exception as exc:
            return _problem(to_problem(exc, context={"model": predictor.name}), predictor.version)
        return Response(body, media_type="application/json", headers=state["answered_by"])

    async def execution_parameters(_: Request) -> Response:
        """What a Batch Transform job asks before sending records (used where its request leaves them out)."""
        return JSONResponse({"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                             "MaxPayloadInMB": jsonlines.max_payload_bytes() // (1024 * 1024)})

    async def stats(_: Request) -> Response:
        batcher: DynamicBatcher = state["batcher"]
        return JSONResponse({**dataclasses.asdict(batcher.stats), "instances": batcher.instances,
                             "gc_frozen_objects": gc.get_freeze_count(),
                             "call_overhead_elements": batcher.cost.overhead})

    return Starlette(lifespan=lifespan, routes=[
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/execution-parameters", execution_parameters, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),  # not reachable through SageMaker; for tests and benchmarks
    ])


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def event_loop_and_parser() -> tuple[str, str]:
    """asyncio's event loop and httptools' parser where installed, else h11; `INFERSTACK_LOOP` / `INFERSTACK_HTTP`
    choose. Not uvloop by default: under uvloop a burst of requests already waiting in their sockets reaches the
    batcher one request per loop turn, each finding the model idle, so 64 such requests ran as 64 inference
    calls (5 under asyncio's loop: tests/functional/test_heavy.py sends such a burst)."""
    loop = os.environ.get(env.HEAVY_LOOP) or "asyncio"
    http = os.environ.get(env.HEAVY_HTTP) or ("httptools" if _available("httptools") else "h11")
    return loop, http


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or os.environ.get("PORT") or DEFAULT_PORT)
    host = os.environ.get("INFERSTACK_BIND_HOST", "0.0.0.0")
    loop, http = event_loop_and_parser()
    logger.info("serving", extra={"port": port, "loop": loop, "http": http})
    uvicorn.run(create_app(ServerConfig.from_env()), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=60, access_log=False, loop=loop, http=http)


if __name__ == "__main__":
    main()

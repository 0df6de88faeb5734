"""The deployment's shape, derived from the manifest: which functions exist and which routes reach them.

The CDK app and the local gateway both build from these lists, so the cloud and `inferstack dev` route
every request the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from inferstack import env
from inferstack.api.schemas import BATCH_BODY_SCHEMA, JOB_BODY_SCHEMA, PREDICT_BODY_SCHEMA
from inferstack.cascade.config import CascadeRuntime, GuardRuntime, StageRuntime
from inferstack.jobs.schemas import CASCADE_PREFIX
from inferstack.manifest import Manifest, Throttle

API_FUNCTION = "api"
API_STAGE = "prod"


FunctionKind = Literal["api", "predict", "worker", "webhooks", "deadletter", "cascade", "batch"]


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: `key` names it in routes, `handler` is its entry point (`module.attr`), `kind` says
    what it does (and so its wiring: environment, grants, event sources)."""

    key: str
    handler: str
    description: str
    memory_mb: int
    timeout_s: int
    model: str | None = None
    #: Does the function need the inference layer (onnxruntime, numpy)?
    inference: bool = False
    #: Does it use the jobs tier's table, bucket, queues and secret?
    jobs: bool = False
    #: The SageMaker endpoint a heavy model's functions call.
    endpoint: str | None = None
    #: The inference component they name in each call, for a heavy model that scales to zero.
    inference_component: str | None = None
    kind: FunctionKind = field(kw_only=True)
    #: Light models it runs in its own process besides `model` (a heavy model's fallback, a cascade's stages).
    extra_models: tuple[str, ...] = field(default=(), kw_only=True)
    #: Heavy models whose endpoints it invokes besides `endpoint` (a cascade's heavy stages).
    invokes: tuple[str, ...] = field(default=(), kw_only=True)
    #: The cascade a cascade function serves.
    cascade: str | None = field(default=None, kw_only=True)
    #: Does it read and write the shared cache table?
    shared_cache: bool = field(default=False, kw_only=True)

    @property
    def local_models(self) -> tuple[str, ...]:
        """The models whose artifacts travel in its bundle (it loads them at import)."""
        own = (self.model,) if self.inference and self.model and not self.endpoint else ()
        return own + self.extra_models

    @property
    def serves_route(self) -> bool:
        """Does API Gateway invoke it for a model's own route (its cold-start settings and concurrency apply)?"""
        return self.kind == "predict"

    def environment(self, catalog_path: str, manifest: Manifest) -> dict[str, str]:
        out = {env.CATALOG_PATH: catalog_path, env.MAX_BODY_BYTES: str(manifest.api.max_body_kb * 1024),
               "POWERTOOLS_SERVICE_NAME": manifest.name, "POWERTOOLS_METRICS_NAMESPACE": "inferstack"}
        if self.model:
            out[env.MODEL_NAME] = self.model
        if self.endpoint:
            out[env.ENDPOINT_NAME] = self.endpoint
        if self.inference_component:
            out[env.INFERENCE_COMPONENT] = self.inference_component
        out.update(_serving_environment(self, manifest))
        return out


def _serving_environment(spec: FunctionSpec, manifest: Manifest) -> dict[str, str]:
    """Cache, latency budget, circuit breaker, fallback and cascade settings of the function's model or cascade."""
    out = {}
    if spec.cascade:
        c = next(c for c in manifest.cascades if c.name == spec.cascade)
        stages = [manifest.model(s) for s in c.stages]
        out[env.CASCADE] = CascadeRuntime(name=c.name, accept=c.accept, budget_ms=c.budget_ms, stages=[
            StageRuntime(model=m.name, tier=m.tier, circuit=m.circuit,
                         endpoint=endpoint_name(manifest, m.name) if m.tier == "heavy" else None,
                         component=inference_component_name(manifest, m.name)) for m in stages]).to_env()
        if c.cache:
            out[env.CACHE] = c.cache.to_env(heavy=True)
    elif spec.model and spec.kind == "worker":
        m = manifest.model(spec.model)
        if m.cache and m.tier == "heavy":
            out[env.CACHE] = m.cache.to_env(heavy=True)
    elif spec.model and spec.kind == "predict":
        m = manifest.model(spec.model)
        if m.cache:
            out[env.CACHE] = m.cache.to_env(heavy=m.tier == "heavy")
        if m.tier == "heavy":
            out[env.GUARD] = GuardRuntime(budget_ms=m.budget_ms, circuit=m.circuit, fallback=m.fallback).to_env()
    return out


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    api_key_required: bool = True
    body_schema: dict[str, Any] | None = None
    throttle: Throttle | None = None
    params: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue and the function its event source mapping feeds (None: nothing consumes it)."""

    key: str
    function: str | None
    visibility_timeout_s: int
    batch_size: int = 10
    batching_window_s: int = 0
    max_concurrency: int | None = None
    #: The queue's dead-letter queue and how many receives send a message there.
    dlq: str | None = None
    max_receive_count: int | None = None
    #: A job queue's model.
    model: str | None = None


WEBHOOKS_FUNCTION = "webhooks"
DEADLETTER_FUNCTION = "deadletter"
WEBHOOK_QUEUE = "webhooks"


def predict_function_key(model: str) -> str:
    return f"predict-{model}"


def endpoint_name(manifest: Manifest, model: str) -> str:
    """The heavy model's SageMaker endpoint (at most 63 characters)."""
    return f"{manifest.name}-{model}"[:63]


def inference_component_name(manifest: Manifest, model: str) -> str | None:
    """The SageMaker inference component of a heavy model that scales to zero (`instances.min = 0`); None for
    the others, which are deployed as a model on the endpoint's variant."""
    m = manifest.model(model)
    if m.tier != "heavy" or not m.instances.scales_to_zero:
        return None
    return f"{endpoint_name(manifest, model)[:60]}-ic"


def cascade_function_key(cascade: str) -> str:
    return f"cascade-{cascade}"


def uses_cache_table(manifest: Manifest) -> bool:
    return any(s.shared_cache for s in functions(manifest))


def rollout_application(manifest: Manifest) -> str:
    """The CodeDeploy application holding the light models' deployment groups."""
    return f"{manifest.name}-models"


def rollout_group(manifest: Manifest, model: str, function: Literal["predict", "worker"]) -> str:
    """The CodeDeploy deployment group that shifts a light model's predict (or worker) alias."""
    return f"{manifest.name}-{model}-{function}"


def worker_function_key(model: str) -> str:
    return f"worker-{model}"


def job_queue_key(model: str) -> str:
    return f"jobs-{model}"


def batch_function_key(model: str) -> str:
    return f"batch-{model}"


def batch_models(manifest: Manifest) -> list[str]:
    """The light models that score batches (`POST /v1/batches`), each with a batch function and a Distributed
    Map state machine."""
    return [m.name for m in manifest.light_models]


def transform_models(manifest: Manifest) -> list[str]:
    """The heavy models that score batches, each with a SageMaker Batch Transform state machine (on `inferstack
    dev`, its job runs on a container of the model started for it)."""
    return [m.name for m in manifest.heavy_models]


def functions(manifest: Manifest) -> list[FunctionSpec]:
    out = [FunctionSpec(API_FUNCTION, "inferstack.functions.api.handler.handler",
                        "inferstack API: health, model catalog, OpenAPI document, jobs", memory_mb=512, timeout_s=10,
                        jobs=True, kind="api")]
    for m in manifest.models:
        if m.tier == "light":
            out.append(FunctionSpec(predict_function_key(m.name), "inferstack.functions.predict.handler.handler",
                                    f"inferstack light model {m.name}", memory_mb=m.memory_mb, timeout_s=m.timeout_s,
                                    model=m.name, inference=True, kind="predict",
                                    shared_cache=bool(m.cache and m.cache.uses_table(heavy=False))))
        else:
            out.append(FunctionSpec(predict_function_key(m.name), "inferstack.functions.heavy.handler.handler",
                                    f"inferstack heavy model {m.name}: proxy to its SageMaker endpoint",
                                    memory_mb=1024 if m.fallback else 512, timeout_s=28, model=m.name,
                                    endpoint=endpoint_name(manifest, m.name), inference=bool(m.fallback),
                                    inference_component=inference_component_name(manifest, m.name), kind="predict",
                                    extra_models=(m.fallback,) if m.fallback else (),
                                    shared_cache=bool(m.cache and m.cache.uses_table(heavy=True))))
    for c in manifest.cascades:
        stages = [manifest.model(s) for s in c.stages]
        out.append(FunctionSpec(cascade_function_key(c.name), "inferstack.functions.cascade.handler.handler",
                                f"inferstack cascade {c.name}: {' -> '.join(c.stages)}", memory_mb=c.memory_mb,
                                timeout_s=28, model=c.stages[0], inference=True, kind="cascade",
                                extra_models=tuple(m.name for m in stages[1:] if m.tier == "light"),
                                invokes=tuple(m.name for m in stages if m.tier == "heavy"), cascade=c.name,
                                shared_cache=bool(c.cache and c.cache.uses_table(heavy=True))))
    jobs = manifest.jobs
    for m in manifest.models:
        heavy = m.tier == "heavy"
        out.append(FunctionSpec(worker_function_key(m.name), "inferstack.functions.worker.handler.handler",
                                f"inferstack job worker for {m.name}", memory_mb=512 if heavy else m.memory_mb,
                                timeout_s=jobs.worker_timeout_s, model=m.name, inference=not heavy, jobs=True,
                                endpoint=endpoint_name(manifest, m.name) if heavy else None,
                                inference_component=inference_component_name(manifest, m.name), kind="worker",
                                shared_cache=bool(heavy and m.cache and m.cache.uses_table(heavy=True))))
    for name in batch_models(manifest):
        m = manifest.model(name)
        out.append(FunctionSpec(batch_function_key(name), "inferstack.functions.batch.handler.handler",
                                f"inferstack bulk scoring for {name}: plans, scores one chunk, finishes a batch",
                                memory_mb=m.memory_mb, timeout_s=manifest.batches.chunk_timeout_s, model=name,
                                inference=True, jobs=True, kind="batch"))
    for name in transform_models(manifest):
        out.append(FunctionSpec(batch_function_key(name), "inferstack.functions.batch.transform.handler",
                                f"inferstack bulk scoring for {name}: plans and finishes its Batch Transform jobs",
                                memory_mb=1024, timeout_s=900, model=name, jobs=True, kind="batch"))
    for c in manifest.cascades:
        stages = [manifest.model(s) for s in c.stages]
        out.append(FunctionSpec(worker_function_key(cascade_function_key(c.name)),
                                "inferstack.functions.worker.handler.handler", f"inferstack job worker for cascade "
                                f"{c.name}", memory_mb=c.memory_mb, timeout_s=jobs.worker_timeout_s, model=c.stages[0],
                                inference=True, jobs=True, kind="worker", cascade=c.name,
                                extra_models=tuple(m.name for m in stages[1:] if m.tier == "light"),
                                invokes=tuple(m.name for m in stages if m.tier == "heavy")))
    out.append(FunctionSpec(WEBHOOKS_FUNCTION, "inferstack.functions.webhooks.handler.handler",
                            "inferstack webhook delivery",
                            memory_mb=256, timeout_s=int(jobs.webhook.timeout_s) + 15, jobs=True, kind="webhooks"))
    out.append(FunctionSpec(DEADLETTER_FUNCTION, "inferstack.functions.deadletter.handler.handler",
                            "inferstack: fail the jobs (and webhooks) whose messages exhausted their retries",
                            memory_mb=256, timeout_s=30, jobs=True, kind="deadletter"))
    return out


def queues(manifest: Manifest) -> list[QueueSpec]:
    jobs = manifest.jobs
    out: list[QueueSpec] = []
    # each model's jobs, and each cascade's (as the target `cascade/<name>`, its queue and worker `cascade-<name>`)
    targets = [(m.name, m.name) for m in manifest.models] + \
        [(f"{CASCADE_PREFIX}{c.name}", cascade_function_key(c.name)) for c in manifest.cascades]
    for target, name in targets:
        dlq = f"{job_queue_key(name)}-dlq"
        out.append(QueueSpec(job_queue_key(name), worker_function_key(name), jobs.visibility_timeout,
                             batch_size=jobs.batch_size, batching_window_s=jobs.batching_window_s,
                             max_concurrency=jobs.max_concurrency, dlq=dlq, max_receive_count=jobs.max_receive_count,
                             model=target))
        out.append(QueueSpec(dlq, DEADLETTER_FUNCTION, visibility_timeout_s=6 * 30))
    webhook_timeout = int(jobs.webhook.timeout_s) + 15
    out.append(QueueSpec(WEBHOOK_QUEUE, WEBHOOKS_FUNCTION, 6 * webhook_timeout, dlq=f"{WEBHOOK_QUEUE}-dlq",
                         max_receive_count=5))
    # Its dead letters mark their jobs' webhooks failed (none stays pending forever).
    out.append(QueueSpec(f"{WEBHOOK_QUEUE}-dlq", DEADLETTER_FUNCTION, visibility_timeout_s=6 * 30))
    return out


def jobs_environment(manifest: Manifest, *, table: str, bucket: str, queue_urls: dict[str, str],
                     webhook_queue: str, secret_id: str) -> dict[str, str]:
    """What every jobs-tier function (and the API function) is told; values may be CDK tokens."""
    jobs = manifest.jobs
    return {
        env.JOBS_TABLE: table, env.JOBS_BUCKET: bucket, env.JOB_QUEUES: json.dumps(queue_urls),
        env.WEBHOOK_QUEUE: webhook_queue, env.WEBHOOK_SECRET_ID: secret_id,
        env.MAX_QUEUE_DEPTH: str(jobs.max_queue_depth), env.RESULT_TTL_DAYS: str(jobs.result_ttl_days),
        env.WEBHOOK_MAX_ATTEMPTS: str(jobs.webhook.max_attempts), env.WEBHOOK_TIMEOUT_S: str(jobs.webhook.timeout_s),
        env.WEBHOOK_BACKOFF_S: str(jobs.webhook.backoff_base_s),
    }


def batches_environment(manifest: Manifest, *, bucket: str, state_machines: dict[str, str]) -> dict[str, str]:
    """What the API function and the batch functions are told about bulk scoring; values may be CDK tokens."""
    b = manifest.batches
    return {
        env.BATCH_BUCKET: bucket, env.BATCH_STATE_MACHINES: json.dumps(state_machines),
        env.BATCH_INPUT_BUCKETS: json.dumps(b.input_buckets), env.BATCH_OUTPUT_BUCKETS: json.dumps(b.output_buckets),
        env.BATCH_ROWS_PER_CHUNK: str(b.rows_per_chunk),
    }


def routes(manifest: Manifest) -> list[Route]:
    """Every route of the REST API. Static paths win over `{name}` (as in API Gateway), so each model
    gets its own `/v1/models/<name>` resources routed to its function; unknown names reach the API function,
    which answers 404."""
    out = [
        Route("GET", "/v1/health", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/openapi.json", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/docs", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/models", API_FUNCTION),
        Route("GET", "/v1/models/{name}", API_FUNCTION, params=("name",)),
        Route("POST", "/v1/models/{name}/predict", API_FUNCTION, body_schema=PREDICT_BODY_SCHEMA,
              params=("name",)),
        Route("POST", "/v1/jobs", API_FUNCTION, body_schema=JOB_BODY_SCHEMA),
        Route("GET", "/v1/jobs/{job_id}", API_FUNCTION, params=("job_id",)),
        Route("POST", "/v1/batches", API_FUNCTION, body_schema=BATCH_BODY_SCHEMA),
        Route("POST", "/v1/batches/uploads", API_FUNCTION),
        Route("GET", "/v1/batches/{batch_id}", API_FUNCTION, params=("batch_id",)),
        Route("GET", "/v1/batches/{batch_id}/results", API_FUNCTION, params=("batch_id",)),
        Route("DELETE", "/v1/batches/{batch_id}", API_FUNCTION, params=("batch_id",)),
        *v2_routes(),
    ]
    for m in manifest.models:
        out.append(Route("GET", f"/v1/models/{m.name}", API_FUNCTION))
        out.append(Route("POST", f"/v1/models/{m.name}/predict", predict_function_key(m.name),
                         body_schema=PREDICT_BODY_SCHEMA, throttle=m.throttle))
        out += v2_model_routes(m.name, predict_function_key(m.name), m.throttle)
    out += [Route("GET", "/v1/cascades", API_FUNCTION), Route("GET", "/v1/cascades/{name}", API_FUNCTION,
                                                                    params=("name",)),
            Route("POST", "/v1/cascades/{name}/predict", API_FUNCTION, body_schema=PREDICT_BODY_SCHEMA,
                  params=("name",))]
    for c in manifest.cascades:
        out.append(Route("GET", f"/v1/cascades/{c.name}", API_FUNCTION))
        out.append(Route("POST", f"/v1/cascades/{c.name}/predict", cascade_function_key(c.name),
                         body_schema=PREDICT_BODY_SCHEMA))
    return out


def v2_routes() -> list[Route]:
    """The Open Inference Protocol's routes, keyed like /v1's; the health checks are open. Infer bodies may be
    binary, so no body schema: the functions check them."""
    name, version = ("name",), ("name", "version")
    return [
        Route("GET", "/v2/health/live", API_FUNCTION, api_key_required=False),
        Route("GET", "/v2/health/ready", API_FUNCTION, api_key_required=False),
        Route("GET", "/v2", API_FUNCTION),
        Route("GET", "/v2/models/{name}", API_FUNCTION, params=name),
        Route("GET", "/v2/models/{name}/ready", API_FUNCTION, params=name),
        Route("POST", "/v2/models/{name}/infer", API_FUNCTION, params=name),
        Route("GET", "/v2/models/{name}/versions/{version}", API_FUNCTION, params=version),
        Route("GET", "/v2/models/{name}/versions/{version}/ready", API_FUNCTION, params=version),
        Route("POST", "/v2/models/{name}/versions/{version}/infer", API_FUNCTION, params=version),
    ]


def v2_model_routes(model: str, function: str, throttle: Throttle | None) -> list[Route]:
    """A model's own v2 resources: infer reaches its function with its throttle; the metadata routes under the
    same static resources reach the API function (API Gateway prefers a static path part over `{name}`)."""
    base = f"/v2/models/{model}"
    return [
        Route("GET", base, API_FUNCTION),
        Route("GET", f"{base}/ready", API_FUNCTION),
        Route("POST", f"{base}/infer", function, throttle=throttle),
        Route("GET", f"{base}/versions/{{version}}", API_FUNCTION, params=("version",)),
        Route("GET", f"{base}/versions/{{version}}/ready", API_FUNCTION, params=("version",)),
        Route("POST", f"{base}/versions/{{version}}/infer", function, throttle=throttle, params=("version",)),
    ]

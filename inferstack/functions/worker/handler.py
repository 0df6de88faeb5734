"""Lambda entry point of one model's job worker, fed by its SQS queue (ReportBatchItemFailures).

A light model is loaded at import and run in-process, as in the predict function; a heavy model's jobs go
to its SageMaker endpoint (while a scale-to-zero model starts, its jobs wait in the queue: `BatchWorker`).
"""

from __future__ import annotations

import os

from inferstack import env
from inferstack.cache.wiring import cache_from_env
from inferstack.catalog import load_catalog
from inferstack.jobs.context import JobsContext
from inferstack.jobs.worker import BatchWorker, EndpointRunner, InProcessRunner, Runner, VariantsRunner
from inferstack.observability import logger, xray

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
jobs = JobsContext.from_env()
runner: Runner
if os.environ.get(env.CASCADE):  # a cascade's jobs
    from inferstack.cascade.config import CascadeRuntime
    from inferstack.cascade.jobs import CascadeJobRunner
    from inferstack.cascade.wiring import build_runner

    runner = CascadeJobRunner(*build_runner(CascadeRuntime.from_env(), catalog, model_root,
                                            jobs.aws.sagemaker_runtime))
elif entry.tier == "heavy":
    from inferstack.heavy.endpoint import EndpointPredictor

    runner = EndpointRunner(EndpointPredictor(
        entry, os.environ[env.ENDPOINT_NAME], client=jobs.aws.sagemaker_runtime,
        component=os.environ.get(env.INFERENCE_COMPONENT) or None))
    cache = cache_from_env(entry.name)
    if cache is not None:  # jobs whose inputs match a cached answer complete from the cache
        from inferstack.cache.jobs import CachingRunner

        runner = CachingRunner(runner, cache, model=entry.name, version=entry.version,
                               input_names=[i.name for i in entry.inputs])
else:
    from inferstack.rollout.variants import Variants

    variants = Variants.load(entry, model_root)  # A/B variants: each batch of jobs runs on one, by weight
    runner = VariantsRunner(variants) if entry.variants else InProcessRunner(variants.arms[0].predictor)
worker = BatchWorker(jobs.store, jobs.webhook_sender(), runner)
xray.tracer()  # where tracing is on, the X-Ray SDK loads at init, not in the first invocation
handler = logger.inject_lambda_context(worker.handle)

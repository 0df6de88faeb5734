"""Lambda entry point of one model's job worker, fed by its SQS queue (ReportBatchItemFailures).

A light model is loaded at import and run in-process, as in the predict function; a heavy model's jobs go
to its SageMaker endpoint.
"""

from __future__ import annotations

import os

from inferstack import env
from inferstack.catalog import load_catalog
from inferstack.jobs.aws import AwsClients
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.store import JobStore
from inferstack.jobs.webhooks import WebhookSender
from inferstack.jobs.worker import BatchWorker, EndpointRunner, InProcessRunner, Runner
from inferstack.observability import logger

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
runner: Runner
if entry.tier == "heavy":
    from inferstack.heavy.endpoint import EndpointPredictor

    runner = EndpointRunner(EndpointPredictor(entry, os.environ[env.ENDPOINT_NAME]))
else:
    from inferstack.inference.session import Predictor

    runner = InProcessRunner(Predictor.load(entry, model_root))
settings = JobsSettings.from_env()
aws = AwsClients()
store = JobStore(aws, table=settings.table, bucket=settings.bucket, ttl_days=settings.result_ttl_days)
worker = BatchWorker(store, WebhookSender(settings, aws, store), runner)
handler = logger.inject_lambda_context(worker.handle)

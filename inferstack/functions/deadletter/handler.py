"""Lambda entry point fed by every model's DLQ: marks jobs that exhausted their retries as failed."""

from __future__ import annotations

from inferstack.jobs.aws import AwsClients
from inferstack.jobs.dead_letter import DeadLetterHandler
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.store import JobStore
from inferstack.jobs.webhooks import WebhookSender
from inferstack.observability import logger

settings = JobsSettings.from_env()
aws = AwsClients()
store = JobStore(aws, table=settings.table, bucket=settings.bucket, ttl_days=settings.result_ttl_days)
handler = logger.inject_lambda_context(DeadLetterHandler(store, WebhookSender(settings, aws, store)).handle)

"""Lambda entry point of webhook delivery, fed by the webhook queue: one signed POST per message."""

from __future__ import annotations

from inferstack.jobs.aws import AwsClients
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.store import JobStore
from inferstack.jobs.webhooks import WebhookHandler, WebhookSender
from inferstack.observability import logger

settings = JobsSettings.from_env()
aws = AwsClients()
store = JobStore(aws, table=settings.table, bucket=settings.bucket, ttl_days=settings.result_ttl_days)
handler = logger.inject_lambda_context(WebhookHandler(WebhookSender(settings, aws, store)).handle)

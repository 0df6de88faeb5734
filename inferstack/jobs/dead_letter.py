"""Messages that exhausted `maxReceiveCount`: a job's marks the job failed with the reason, and notifies; a
webhook's (the webhook function failed on it again and again, e.g. it timed out) marks the job's webhook failed,
so that no webhook stays `pending` forever."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from inferstack.jobs.exceptions import JobNotFoundError
from inferstack.jobs.schemas import JobMessage, WebhookMessage
from inferstack.jobs.sqs import partial_batch_response
from inferstack.jobs.store import TERMINAL, JobStore, now_iso
from inferstack.jobs.webhooks import WebhookSender
from inferstack.observability import emf, logger, registry


class DeadLetterHandler:
    def __init__(self, store: JobStore, webhooks: WebhookSender) -> None:
        self.store, self.webhooks = store, webhooks

    def record(self, record: SQSRecord) -> None:
        try:
            message = JobMessage.model_validate_json(record.body)
        except ValidationError:
            self._webhook(record)
            return
        try:
            job = self.store.get(message.job_id)
        except JobNotFoundError:
            logger.error("dead letter without a job", extra={"message_id": record.message_id})
            return
        if job.status in TERMINAL:
            return
        error = {"type": "processing-failed",
                 "detail": f"gave up after {job.attempts} attempt(s): {job.last_error or 'the worker did not finish'}"}
        if self.store.finish(job.job_id, error=error):
            registry.model(job.model).add(emf.JOBS_FAILED)
            job.status, job.error = "failed", error
            webhook = self.webhooks.message_for(job)
            if webhook:
                self.webhooks.enqueue(webhook)

    def _webhook(self, record: SQSRecord) -> None:
        try:
            message = WebhookMessage.model_validate_json(record.body)
        except ValidationError:
            logger.error("dead letter without a job", extra={"message_id": record.message_id})
            return
        attempt = {"at": now_iso(), "attempt": message.attempt,
                   "error": "delivery gave up: the webhook function failed on this attempt repeatedly"}
        if self.store.fail_webhook(message.job_id, attempt):
            logger.warning("webhook dead-lettered", extra={"job_id": message.job_id})

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        try:
            return partial_batch_response(event, self.record, context)
        finally:
            registry.flush()

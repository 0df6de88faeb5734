"""Lambda entry point fed by every model's DLQ: marks jobs that exhausted their retries as failed."""

from __future__ import annotations

from inferstack.jobs.context import JobsContext
from inferstack.jobs.dead_letter import DeadLetterHandler
from inferstack.observability import logger

jobs = JobsContext.from_env()
handler = logger.inject_lambda_context(DeadLetterHandler(jobs.store, jobs.webhook_sender()).handle)

"""Lambda entry point of webhook delivery, fed by the webhook queue: one signed POST per message."""

from __future__ import annotations

from inferstack.jobs.context import JobsContext
from inferstack.jobs.webhooks import WebhookHandler
from inferstack.observability import logger, xray

jobs = JobsContext.from_env()
xray.tracer()  # where tracing is on, the X-Ray SDK loads at init, not in the first invocation
handler = logger.inject_lambda_context(WebhookHandler(jobs.webhook_sender()).handle)

"""Lambda entry point of one heavy model's batch function: the Plan and Finish steps around its SageMaker
Batch Transform job (`inferstack.batches.transform`). No model is loaded: the job's instances score."""

from __future__ import annotations

from inferstack.batches.settings import BatchSettings
from inferstack.batches.store import BatchStore
from inferstack.batches.transform import TransformFunction
from inferstack.jobs.context import JobsContext
from inferstack.observability import logger

jobs = JobsContext.from_env()
function = TransformFunction(BatchSettings.from_env(), jobs.aws,
                             BatchStore(jobs.aws, table=jobs.settings.table, ttl_days=jobs.settings.result_ttl_days),
                             webhook_queue=jobs.settings.webhook_queue)
handler = logger.inject_lambda_context(function.handle)

"""Lambda entry point of the API function: health, the model catalog, the OpenAPI document, and jobs
(submit and read).

It never imports onnxruntime or numpy: model signatures come from the catalog computed at build time.
"""

from __future__ import annotations

from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.batches.settings import BatchSettings
from inferstack.catalog import load_catalog
from inferstack.jobs.service import JobService
from inferstack.jobs.settings import JobsSettings

catalog, _ = load_catalog()
jobs = JobService(JobsSettings.from_env()) if JobsSettings.configured() else None
batches = None
if jobs is not None and BatchSettings.configured():
    from inferstack.batches.service import BatchService
    from inferstack.batches.store import BatchStore

    batches = BatchService(BatchSettings.from_env(), jobs.aws,
                           BatchStore(jobs.aws, table=jobs.settings.table, ttl_days=jobs.settings.result_ttl_days),
                           allow_loopback_webhooks=jobs.settings.allow_loopback_webhooks)
handler = lambda_handler(create_app(catalog, jobs=jobs, batches=batches))

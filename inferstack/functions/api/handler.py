"""Lambda entry point of the API function: health, the model catalog, the OpenAPI document, and jobs
(submit and read).

It never imports onnxruntime or numpy: model signatures come from the catalog computed at build time.
"""

from __future__ import annotations

from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.catalog import load_catalog
from inferstack.jobs.service import JobService
from inferstack.jobs.settings import JobsSettings

catalog, _ = load_catalog()
jobs = JobService(JobsSettings.from_env()) if JobsSettings.configured() else None
handler = lambda_handler(create_app(catalog, jobs=jobs))

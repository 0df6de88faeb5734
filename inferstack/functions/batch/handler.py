"""Lambda entry point of one light model's batch function: every step of its batch state machine (plan, score
a chunk of the Distributed Map, finish). The model loads at import, as in the predict function."""

from __future__ import annotations

import os

from inferstack import env
from inferstack.batches.rows import ChunkRows
from inferstack.batches.scorer import BatchFunction
from inferstack.batches.settings import BatchSettings
from inferstack.batches.store import BatchStore
from inferstack.catalog import load_catalog
from inferstack.inference.session import Predictor
from inferstack.jobs.context import JobsContext
from inferstack.jobs.worker import InProcessRunner
from inferstack.observability import logger

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
jobs = JobsContext.from_env()
predictor = Predictor.load(entry, model_root)
function = BatchFunction(
    BatchSettings.from_env(), jobs.aws, BatchStore(jobs.aws, table=jobs.settings.table,
                                                   ttl_days=jobs.settings.result_ttl_days),
    InProcessRunner(predictor), rows=ChunkRows(predictor.inputs, handler=predictor.handler is not None),
    handler=predictor.handler is not None, model=entry.name, version=entry.version,
    webhook_queue=jobs.settings.webhook_queue)
handler = logger.inject_lambda_context(function.handle)

"""Lambda entry point of a heavy model's predict route: a thin proxy to its SageMaker endpoint.

It imports neither onnxruntime nor numpy; the container validates inputs and its 4xx answers come back as
they are, SageMaker's own errors become 429/502/503/504 problems. A model that scales to zero answers 503 with
`Retry-After` while it starts (`NoCapacityError`, raised by `EndpointPredictor.predict`: the place where a
model's `fallback` would answer instead).
"""

from __future__ import annotations

import os

from inferstack import env
from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.catalog import Catalog, load_catalog
from inferstack.heavy.endpoint import EndpointPredictor

catalog, _ = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
predictor = EndpointPredictor(entry, os.environ[env.ENDPOINT_NAME],
                              component=os.environ.get(env.INFERENCE_COMPONENT) or None)
handler = lambda_handler(create_app(Catalog(models=[entry]), {entry.name: predictor}))

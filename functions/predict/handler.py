"""Lambda entry point of one light model: `POST /v1/models/{name}/predict`.

The model (named by `$INFERSTACK_MODEL`) is loaded and warmed up at import, during the function's init
phase (or before the SnapStart snapshot), never inside a request.
"""

from __future__ import annotations

import os

from inferstack import env
from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.catalog import Catalog, load_catalog
from inferstack.inference.session import Predictor

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
predictor = Predictor.load(entry, model_root)
handler = lambda_handler(create_app(Catalog(models=[entry]), {entry.name: predictor}))

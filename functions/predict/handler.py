"""Lambda entry point of one light model: `POST /v1/models/{name}/predict`.

The model (named by `$INFERSTACK_MODEL`) is loaded and warmed up at import, during the function's init
phase (or before the SnapStart snapshot), never inside a request.
"""

from __future__ import annotations

import os
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from inferstack import env
from inferstack.api.app import create_app
from inferstack.catalog import Catalog, load_catalog
from inferstack.inference.session import Predictor
from inferstack.observability import logger

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
predictor = Predictor.load(entry, model_root)
app = create_app(Catalog(models=[entry]), {entry.name: predictor})
asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result: dict[str, Any] = asgi(event, cast(Any, context))
    return result

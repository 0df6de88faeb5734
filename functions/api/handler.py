"""Lambda entry point of the API function: health, the model catalog and the OpenAPI document.

It never imports onnxruntime or numpy: model signatures come from the catalog computed at build time.
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from inferstack.api.app import create_app
from inferstack.catalog import load_catalog
from inferstack.observability import logger

catalog, _ = load_catalog()
app = create_app(catalog)
asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result: dict[str, Any] = asgi(event, cast(Any, context))
    return result

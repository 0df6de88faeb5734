"""Lambda entry point of the API function: health, the model catalog and the OpenAPI document.

It never imports onnxruntime or numpy: model signatures come from the catalog computed at build time.
"""

from __future__ import annotations

from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.catalog import load_catalog

catalog, _ = load_catalog()
handler = lambda_handler(create_app(catalog))

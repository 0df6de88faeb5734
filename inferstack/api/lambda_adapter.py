"""Adapt the ASGI app to Lambda: Mangum with lifespan off (it would run on every invocation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from inferstack.api.problems import PROBLEM_JSON
from inferstack.observability import logger, registry, xray

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

#: Bodies of these types go back as text; Mangum would base64 them otherwise, and a REST API without
#: binary media types would hand the client base64.
TEXT_MIME_TYPES = ["application/json", PROBLEM_JSON, "text/html", "text/plain"]


def lambda_handler(app: FastAPI) -> LambdaHandler:
    asgi = Mangum(app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)
    xray.tracer()  # built at init: where tracing is on, the X-Ray SDK loads now, not in the first request

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        _ensure_event_loop()
        try:
            with xray.traced("## handler"):  # the routes annotate it (`xray.annotate`)
                result: dict[str, Any] = asgi(event, cast(Any, context))
        finally:
            registry.flush()  # the invocation's metrics, before the environment may be frozen
        return result

    return handler


def _ensure_event_loop() -> None:
    """Mangum runs each call on `asyncio.get_event_loop()`, which raises once anything in the process ended an
    `asyncio.run` (it leaves no current loop behind): give the thread a fresh loop in that case."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())

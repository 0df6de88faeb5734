"""Per-model request metrics of the FastAPI app (a heavy model's predict function, and a light predict
function's routes beside its lean path): an ASGI middleware that counts every predict and infer call by
status class, times it, and names the problem type of a 4xx (`ValidationFailures` by kind)."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from inferstack.observability import emf as m
from inferstack.observability import registry, xray
from inferstack.rollout import MODEL_VERSION_HEADER

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
#: Where the problem handlers note the problem type they answered (`install_problem_handlers`).
PROBLEM_KIND = "inferstack.problem"
_VERSION_HEADER = MODEL_VERSION_HEADER.encode()
_MODEL_ROUTE = re.compile(r"^/v1/models/([^/]+)/predict$|^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")


class ModelMetricsMiddleware:
    def __init__(self, app: ASGIApp, versions: Mapping[str, str]) -> None:
        self.app, self.versions = app, versions

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        route = _MODEL_ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        model = route and (route.group(1) or route.group(2))
        if not model or model not in self.versions:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, version = 500, self.versions[model]

        async def recording(message: dict[str, Any]) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # the version that answered (a heavy model's endpoint names it: blue/green shifts run both)
                version = next((v.decode() for k, v in message.get("headers") or [] if k == _VERSION_HEADER), version)
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            xray.annotate(model=model, version=version)
            kind = scope.get(PROBLEM_KIND) or (f"http-{status}" if 400 <= status < 500 else None)
            registry.model(model, version).request(status, m.elapsed_ms(started), kind=kind)

"""X-Ray annotations (`model`, `version`, `job_id`) through Powertools' Tracer, so a trace is found by
`annotation.model = "iris"` or `annotation.job_id = "..."` in the X-Ray console.

On Lambda the function's own segment is a facade that cannot be annotated: annotations go on a subsegment.
`traced(name, ...)` opens one (as Powertools' `capture_lambda_handler` does) and makes it the invocation's
target for `annotate(...)`, also from FastAPI's threadpool (a context variable, not the SDK's thread-local).

The Tracer (and with it the X-Ray SDK and botocore) is created on first use, and only where tracing is on: on
Lambda (`LAMBDA_TASK_ROOT`) unless `POWERTOOLS_TRACE_DISABLED` is true. Elsewhere (`inferstack dev`, tests,
SAM local) everything here is a no-op: no import, no daemon, no error log.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from inferstack.observability.emf import SERVICE

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

ANNOTATIONS = ("model", "version", "job_id")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
#: The subsegment `annotate` writes to (the innermost `traced` of this invocation), or None.
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("inferstack_xray_subsegment", default=None)


def enabled() -> bool:
    """Powertools' own rule: on Lambda, not under SAM local or Chalice, not `POWERTOOLS_TRACE_DISABLED`."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUE:
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL") \
        and not os.environ.get("AWS_CHALICE_CLI_MODE")


@functools.cache
def tracer() -> Tracer | None:
    """The process's Powertools Tracer (created once, no auto-patching), or None where tracing is off."""
    if not enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE, auto_patch=False)


def reset() -> None:
    """Decide again on the next use (tests that switch tracing on or off)."""
    tracer.cache_clear()


def _put(entity: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None:
            entity.put_annotation(key, value)


@contextlib.contextmanager
def _subsegment(t: Tracer, name: str, values: dict[str, Any]) -> Iterator[Any]:
    with t.provider.in_subsegment(name) as sub:
        _put(sub, values)
        token = _current.set(sub)
        try:
            yield sub
        finally:
            _current.reset(token)


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def traced(name: str, *, model: str | None = None, version: str | None = None,
           job_id: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """A subsegment `name` annotated with the values given (None: left out); a shared no-op where tracing is off."""
    t = tracer()
    if t is None:
        return _OFF
    return _subsegment(t, name, {"model": model, "version": version, "job_id": job_id})


def annotate(*, model: str | None = None, version: str | None = None, job_id: str | None = None) -> None:
    """Annotate the innermost `traced` subsegment of this invocation (nothing outside one, or with tracing off)."""
    sub = _current.get()
    if sub is not None:
        _put(sub, {"model": model, "version": version, "job_id": job_id})

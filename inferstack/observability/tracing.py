"""The X-Ray trace of the current request.

Lambda sets `_X_AMZN_TRACE_ID` for each invocation (`Root=1-...;Parent=...;Sampled=1`) when the function's
tracing is active, as it is on every inferstack function; the local runtime of `inferstack dev` sets it the
same way from the trace header its gateway adds. Powertools' logger already writes it into every log line
(`xray_trace_id`); problem+json answers carry it as their `instance` and the metric documents as a property,
so a user goes from an error to its trace.
"""

from __future__ import annotations

import os
import re
from typing import Any

TRACE_ENV = "_X_AMZN_TRACE_ID"
_ROOT = re.compile(r"Root=(1-[0-9a-f]{8}-[0-9a-f]{24})")
#: `instance` of a problem+json answer: this prefix and the trace ID (`inferstack.api.problems` says it too).
INSTANCE_PREFIX = "urn:x-amzn-trace-id:"


def trace_id(header: str | None = None) -> str | None:
    """The root trace ID (`1-5759e988-bd862e3fe1be46a994272793`) of `header`, else of the current invocation."""
    value = header if header is not None else os.environ.get(TRACE_ENV)
    if not value:
        return None
    m = _ROOT.search(value)
    return m.group(1) if m else None


def instance() -> str | None:
    """The problem+json `instance` of an error answered now: the URN of the request's trace, if traced."""
    tid = trace_id()
    return INSTANCE_PREFIX + tid if tid else None


def new_trace_header(now: float | None = None) -> str:
    """A new X-Ray trace header (`Root=1-<epoch hex>-<96 random bits>;Sampled=1`), as API Gateway starts one."""
    import secrets
    import time

    return f"Root=1-{int(now if now is not None else time.time()):08x}-{secrets.token_hex(12)};Sampled=1"


def sqs_trace_attributes() -> Any:
    """`send_message` arguments that carry the current trace to the queue's consumer (`AWSTraceHeader`): Lambda
    links the consumer's invocation to it, so a job's trace runs API Gateway -> API function -> SQS -> worker."""
    header = os.environ.get(TRACE_ENV)
    if not header or trace_id(header) is None:
        return {}
    kept = ";".join(p for p in header.split(";") if p.split("=", 1)[0] in ("Root", "Parent", "Sampled"))
    return {"MessageSystemAttributes": {"AWSTraceHeader": {"StringValue": kept, "DataType": "String"}}}

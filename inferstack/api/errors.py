"""One step from an exception to the answer a client gets.

Every front door (the FastAPI app, the light predict function's lean path, the heavy container, and any
protocol added beside `/v1`) calls `to_problem(exc)` and renders what it returns: problem+json on `/v1`, the
same status and detail in another shape elsewhere. Nothing internal reaches the client: an unexpected
exception is logged here, with its traceback, and answered as a bare 500.

Only light modules are imported (no boto3, numpy or onnxruntime): the API function registers this at import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from inferstack.api import problems
from inferstack.api.problems import PROBLEM_JSON, ProblemError, ProblemType
from inferstack.batches.exceptions import (
    BatchFinishedError,
    BatchNotFinishedError,
    BatchNotFoundError,
    BatchRequestError,
)
from inferstack.heavy.exceptions import EndpointError
from inferstack.inference.exceptions import InputValidationError
from inferstack.jobs.exceptions import (
    IdempotencyConflictError,
    IdempotencyInProgressError,
    JobNotFoundError,
    QueueFullError,
    UnsafeWebhookUrlError,
)
from inferstack.observability import logger
from inferstack.observability.tracing import instance
from inferstack.protocol.exceptions import (
    BinaryDataError,
    DecodedTooLargeError,
    InferRequestError,
    UnsupportedEncodingError,
)

#: Seconds a client is told to wait when a model's queue is full, or an AWS dependency cannot be reached.
QUEUE_FULL_RETRY_AFTER_S = 5
AWS_RETRY_AFTER_S = 2
INTERNAL_DETAIL = "An internal error occurred; it has been logged."

#: The exceptions that mean a client's request was wrong, or a service it needs is busy: answered with their
#: own status, never logged as a failure. A front door registers a handler for each class (Starlette answers a
#: handler registered for `Exception` in its outermost middleware, then re-raises: a traceback per 4xx).
ANSWERED: tuple[type[Exception], ...] = (
    ProblemError, InputValidationError, InferRequestError, BinaryDataError, DecodedTooLargeError,
    UnsupportedEncodingError, EndpointError, UnsafeWebhookUrlError, IdempotencyConflictError,
    IdempotencyInProgressError, QueueFullError, JobNotFoundError, BatchRequestError, BatchNotFoundError,
    BatchNotFinishedError, BatchFinishedError,
)


@dataclass(frozen=True)
class Problem:
    """What to answer: a problem type, its detail, extension members and response headers."""

    type: ProblemType
    detail: str
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return self.type.status

    def body(self) -> bytes:
        """RFC 9457 problem+json; `instance` names the request's X-Ray trace where it is traced."""
        trace = instance()
        return self.type.encode(self.detail, **({"instance": trace} if trace else {}), **self.extensions)

    def response_headers(self) -> dict[str, str]:
        return {"content-type": PROBLEM_JSON, **self.headers}

    def error_body(self) -> bytes:
        """The Open Inference Protocol's error shape, `{"error": "..."}`."""
        return json.dumps({"error": self.detail}).encode()

    def error_headers(self) -> dict[str, str]:
        """The headers of `error_body` (JSON, as the protocol's clients expect, and e.g. `Retry-After`)."""
        return {"content-type": "application/json", **self.headers}


def _is_aws_failure(exc: BaseException) -> bool:
    """A botocore error (throttling, an outage), told apart without importing botocore."""
    return type(exc).__module__.startswith(("botocore.", "boto3."))


def to_problem(exc: BaseException, *, context: dict[str, Any] | None = None) -> Problem:
    """The answer for `exc`. `context` (request ID, model, path) goes to the log of an unexpected error."""
    if isinstance(exc, ProblemError):
        return Problem(exc.problem, exc.detail, dict(exc.extensions), dict(exc.headers))
    if isinstance(exc, InputValidationError):
        return Problem(problems.INVALID_INPUT, str(exc), {"errors": [p.as_dict() for p in exc.problems]})
    if isinstance(exc, InferRequestError):
        return Problem(problems.INVALID_REQUEST, str(exc), {"errors": [{"input": exc.field, "detail": exc.detail}]})
    if isinstance(exc, BinaryDataError):
        return Problem(problems.BAD_BINARY_DATA, str(exc))
    if isinstance(exc, DecodedTooLargeError):
        return Problem(problems.PAYLOAD_TOO_LARGE, str(exc))
    if isinstance(exc, UnsupportedEncodingError):
        return Problem(problems.UNSUPPORTED_ENCODING, str(exc))
    if isinstance(exc, EndpointError):
        kind = ProblemType(exc.problem.slug, exc.status, exc.problem.title)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return Problem(kind, exc.detail, dict(exc.extensions), headers)
    if isinstance(exc, UnsafeWebhookUrlError):
        return Problem(problems.UNSAFE_WEBHOOK, str(exc), {"errors": [{"input": "webhook.url", "detail": str(exc)}]})
    if isinstance(exc, IdempotencyConflictError):
        return Problem(problems.IDEMPOTENCY_CONFLICT, str(exc), {"job_id": exc.job_id})
    if isinstance(exc, IdempotencyInProgressError):
        return Problem(problems.IDEMPOTENCY_IN_PROGRESS, str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, QueueFullError):
        return Problem(problems.QUEUE_FULL, str(exc), headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)})
    if isinstance(exc, JobNotFoundError):
        return Problem(problems.JOB_NOT_FOUND, f"No job {exc.job_id!r} for this API key", {"job_id": exc.job_id})
    if isinstance(exc, BatchRequestError):
        return Problem(problems.INVALID_REQUEST, str(exc), {"errors": [{"input": exc.field, "detail": exc.detail}]})
    if isinstance(exc, BatchNotFoundError):
        return Problem(problems.BATCH_NOT_FOUND, f"No batch {exc.batch_id!r} for this API key",
                       {"batch_id": exc.batch_id})
    if isinstance(exc, BatchNotFinishedError):
        return Problem(problems.BATCH_NOT_FINISHED, str(exc), {"batch_id": exc.batch_id, "status": exc.status})
    if isinstance(exc, BatchFinishedError):
        return Problem(problems.BATCH_FINISHED, str(exc), {"batch_id": exc.batch_id, "status": exc.status})
    if _is_aws_failure(exc):
        logger.warning("an AWS dependency failed", extra={**(context or {}), "error": f"{type(exc).__name__}: {exc}"})
        return Problem(problems.UNAVAILABLE, "A dependency of this service is unavailable; retry shortly",
                       headers={"Retry-After": str(AWS_RETRY_AFTER_S)})
    logger.error("unhandled error", exc_info=exc, extra=context or {})
    return Problem(problems.INTERNAL, INTERNAL_DETAIL)

"""Errors of the jobs tier."""

from __future__ import annotations


class JobsError(Exception):
    """Base class of the jobs tier's errors."""


class JobNotFoundError(JobsError):
    """No such job, or not visible to this API key."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(job_id)


class IdempotencyConflictError(JobsError):
    """The idempotency key was used before with a different request body."""

    def __init__(self, key: str, job_id: str) -> None:
        self.key, self.job_id = key, job_id
        super().__init__(f"Idempotency-Key {key!r} was already used for job {job_id} with a different body")


class IdempotencyInProgressError(JobsError):
    """Another submission with this idempotency key is still on its way (a 409: retry shortly)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"A submission with Idempotency-Key {key!r} is still being processed; retry shortly")


class QueueFullError(JobsError):
    """The model's queue is deeper than the manifest allows."""

    def __init__(self, model: str, depth: int, limit: int) -> None:
        self.model, self.depth, self.limit = model, depth, limit
        super().__init__(f"model {model!r} has {depth} jobs waiting (limit {limit}); retry later")


class UnsafeWebhookUrlError(JobsError):
    """A webhook URL that is not https or resolves to a non-public address."""


class TransientJobError(JobsError):
    """A failure worth retrying (the message returns to the queue)."""


def public_reason(exc: BaseException) -> str:
    """What a client may read about a failure (a job's error, a webhook attempt): this tier's own messages as they
    are, anything else by its kind only: an AWS error by its code (its message names roles, accounts and
    resources), other exceptions by their type (their messages may hold paths, addresses, internals). The
    specifics go to the log."""
    if isinstance(exc, JobsError):
        return str(exc)
    response = getattr(exc, "response", None)
    code = (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
    if code:
        return f"AWS error {code}"
    cause = exc.__cause__  # a wrapper (e.g. HandlerError) is told with the kind of what it wraps
    return f"{type(exc).__name__} ({type(cause).__name__})" if cause is not None else type(exc).__name__

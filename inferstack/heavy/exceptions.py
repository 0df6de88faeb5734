"""Errors of the heavy tier (no boto3 here: the API app registers a handler for them at import)."""

from __future__ import annotations

from typing import Any

from inferstack.api.problems import SCALING_OUT, ProblemType


class EndpointError(Exception):
    """The endpoint did not answer with a result; `problem`, `detail` and `extensions` say what to answer."""

    def __init__(self, problem: ProblemType, detail: str, *, status: int | None = None, retry_after: int | None = None,
                 **extensions: Any) -> None:
        self.problem, self.detail, self.retry_after, self.extensions = problem, detail, retry_after, extensions
        self.status = status or problem.status
        super().__init__(detail)

    @property
    def is_client_error(self) -> bool:
        """The request was at fault (retrying it cannot help)."""
        return 400 <= self.status < 500 and self.status != 429


class NoCapacityError(EndpointError):
    """The model's endpoint has no instance up (it scaled to zero while idle). The failed invocation itself
    starts the scale-out (SageMaker's `NoCapacityInvocationFailures` metric triggers the step scaling policy;
    the local endpoint starts its container). Callers answer 503 with `Retry-After`, jobs wait in their queue.

    This is also the seam for a model's `fallback`: a front door that has one answers from it instead."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(SCALING_OUT, detail, retry_after=retry_after)

"""Why an answer could not be computed in full: each maps to a degraded answer where an earlier stage or a
fallback can answer, and to a problem (504, 503) where nothing can."""

from __future__ import annotations

from inferstack.api import problems
from inferstack.api.problems import ProblemError


class BudgetExceededError(ProblemError):
    """The request's latency budget ran out before the downstream call answered."""

    degraded = "budget"

    def __init__(self, budget_ms: int) -> None:
        super().__init__(problems.GATEWAY_TIMEOUT, f"The request's latency budget of {budget_ms} ms was spent before "
                         "the model answered (raise x-latency-budget-ms, or send the request as a job)",
                         budget_ms=budget_ms)


class CircuitOpenError(ProblemError):
    """The endpoint's circuit is open: calls are not attempted until the cool-down ends."""

    degraded = "circuit-open"

    def __init__(self, model: str, retry_after_s: int) -> None:
        super().__init__(problems.UNAVAILABLE, f"Model {model!r} failed repeatedly and is given a rest; retry after "
                         "the Retry-After delay", headers={"Retry-After": str(retry_after_s)}, model=model)

"""Latency budgets: how long a request may take in all, from the route's default (`budget_ms` in the manifest)
or the client's `x-latency-budget-ms` header; each downstream call gets what is left as its timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

from inferstack.api import problems
from inferstack.api.problems import ProblemError

HEADER = "x-latency-budget-ms"
#: Budgets above API Gateway's 29 s integration timeout could never be kept.
MAX_BUDGET_MS = 29_000


class Budget:
    """`total_ms` from `start` (the clock's reading when the request arrived)."""

    def __init__(self, total_ms: int, clock: Callable[[], float] = time.monotonic, start: float | None = None) -> None:
        self.total_ms, self.clock = total_ms, clock
        self.start = clock() if start is None else start

    def elapsed_s(self) -> float:
        return self.clock() - self.start

    def remaining_s(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.total_ms / 1000 - self.elapsed_s())

    @property
    def spent(self) -> bool:
        return self.remaining_s() <= 0


def parse_budget(value: str | None, default_ms: int | None, clock: Callable[[], float] = time.monotonic
                 ) -> Budget | None:
    """The request's budget: the header's (a whole number of milliseconds, 1 to 29000), else the default; None
    when neither is set. A malformed header is the client's error: 422 naming it."""
    if value is None or not value.strip():
        return Budget(default_ms, clock) if default_ms else None
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_BUDGET_MS:
        raise ProblemError(problems.INVALID_REQUEST, f"{HEADER} must be a whole number of milliseconds from 1 to "
                           f"{MAX_BUDGET_MS}, got {value[:40]!r}",
                           errors=[{"input": HEADER, "detail": f"expected 1..{MAX_BUDGET_MS}"}])
    return Budget(int(text), clock)

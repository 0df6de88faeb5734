"""Latency budget arithmetic and the header's parsing."""

from __future__ import annotations

import pytest

from inferstack.api.problems import ProblemError
from inferstack.cascade.budget import Budget, parse_budget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remaining_is_the_budget_less_the_elapsed_time_never_negative() -> None:
    clock = Clock()
    budget = Budget(250, clock)
    assert budget.remaining_s() == pytest.approx(0.25) and not budget.spent
    clock.now += 0.1
    assert budget.remaining_s() == pytest.approx(0.15) and budget.elapsed_s() == pytest.approx(0.1)
    clock.now += 0.2
    assert budget.remaining_s() == 0.0 and budget.spent


def test_the_header_overrides_the_default() -> None:
    clock = Clock()
    parsed = parse_budget("80", 2000, clock)
    assert parsed is not None and parsed.total_ms == 80
    default = parse_budget(None, 2000, clock)
    assert default is not None and default.total_ms == 2000
    assert parse_budget(None, None, clock) is None and parse_budget("  ", None, clock) is None


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "abc", "29001", "1e3"])
def test_a_malformed_header_is_a_422_naming_it(value: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_budget(value, None)
    assert caught.value.problem.status == 422 and "x-latency-budget-ms" in caught.value.detail

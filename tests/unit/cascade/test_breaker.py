"""The circuit breaker's state machine: closed -> open after N failures in the window -> half-open after the
cool-down (one probe) -> closed on its success, open again on its failure."""

from __future__ import annotations

from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.config import Circuit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("heavy", Circuit(failures=3, window_s=10, cool_down_s=5), clock)


def test_opens_after_n_failures_within_the_window() -> None:
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    assert b.retry_after_s() == 5


def test_failures_outside_the_window_do_not_count_and_a_success_resets() -> None:
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    clock.now = 11  # both fell out of the 10 s window
    b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state == "closed"


def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now = 4.9
    assert not b.allow() and b.retry_after_s() == 1
    clock.now = 5
    assert b.state == "half-open"
    assert b.allow()  # the probe
    assert not b.allow()  # nobody else meanwhile
    b.record_success()
    assert b.state == "closed" and b.allow()


def test_a_failed_probe_opens_again_for_a_full_cool_down() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now = 6
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and b.opened == 2
    clock.now = 10.9
    assert not b.allow()
    clock.now = 11
    assert b.allow()


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now = 5
    assert b.allow() and not b.allow()
    b.release_probe()
    assert b.allow()

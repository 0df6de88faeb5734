"""Endpoint calls under a budget and the breaker: a call past the budget answers at once; failures open the
circuit; while open, no call goes out."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from inferstack.api import problems
from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.budget import Budget
from inferstack.cascade.config import Circuit
from inferstack.cascade.exceptions import BudgetExceededError, CircuitOpenError
from inferstack.cascade.guard import GuardedPredictor
from inferstack.heavy.exceptions import EndpointError


class Endpoint:
    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.mode = "ok"

    def predict(self, raw: Any) -> dict[str, Any]:
        self.calls += 1
        if self.mode == "hang":
            self.release.wait(10)
        if self.mode == "down":
            raise EndpointError(problems.UNAVAILABLE, "down", retry_after=5)
        if self.mode == "bad":
            raise EndpointError(problems.INVALID_INPUT, "bad input")
        return {"y": raw}


def guarded(failures: int = 2, slow_call_ms: int = 10) -> tuple[Endpoint, GuardedPredictor]:
    endpoint = Endpoint()
    breaker = CircuitBreaker("heavy", Circuit(failures=failures, window_s=60, cool_down_s=60,
                                              slow_call_ms=slow_call_ms))
    return endpoint, GuardedPredictor(endpoint, breaker)


def test_a_hanging_call_is_abandoned_when_the_budget_runs_out() -> None:
    endpoint, guard = guarded()
    endpoint.mode = "hang"
    try:
        with pytest.raises(BudgetExceededError) as caught:
            guard.predict([1], Budget(50))
        assert caught.value.problem.status == 504
    finally:
        endpoint.release.set()


def test_failures_open_the_circuit_and_then_no_call_goes_out() -> None:
    endpoint, guard = guarded()
    endpoint.mode = "down"
    for _ in range(2):
        with pytest.raises(EndpointError):
            guard.predict([1])
    assert guard.breaker.state == "open"
    with pytest.raises(CircuitOpenError) as caught:
        guard.predict([1])
    assert endpoint.calls == 2 and caught.value.headers["Retry-After"] == "60"


def test_the_clients_own_errors_do_not_count_against_the_endpoint() -> None:
    endpoint, guard = guarded(failures=1)
    endpoint.mode = "bad"
    with pytest.raises(EndpointError):
        guard.predict([1])
    assert guard.breaker.state == "closed"


def test_a_budget_too_short_to_judge_the_endpoint_does_not_blame_it() -> None:
    endpoint, guard = guarded(failures=1, slow_call_ms=5000)
    endpoint.mode = "hang"
    try:
        with pytest.raises(BudgetExceededError):
            guard.predict([1], Budget(20))
        assert guard.breaker.state == "closed"
    finally:
        endpoint.release.set()


def test_a_spent_budget_makes_no_call() -> None:
    endpoint, guard = guarded()
    budget = Budget(1)
    time.sleep(0.01)
    with pytest.raises(BudgetExceededError):
        guard.predict([1], budget)
    assert endpoint.calls == 0 and guard.predict([2]) == {"y": [2]}


def test_a_model_scaling_out_from_zero_does_not_open_the_circuit() -> None:
    from inferstack.heavy.exceptions import NoCapacityError

    class Starting:
        def predict(self, raw: Any) -> dict[str, Any]:
            raise NoCapacityError("starting", retry_after=60)

    guard = GuardedPredictor(Starting(), CircuitBreaker("heavy", Circuit(failures=1)))
    for _ in range(3):
        with pytest.raises(NoCapacityError):
            guard.predict([1])
    assert guard.breaker.state == "closed"


def test_open_inference_protocol_calls_share_the_models_circuit() -> None:
    from inferstack.cascade.guard import GuardedEndpoint

    class V2Endpoint(Endpoint):
        name = "heavy"

        def infer_v2(self, body: bytes, json_length: int | None) -> tuple[bytes, dict[str, str]]:
            self.calls += 1
            if self.mode == "down":
                raise EndpointError(problems.UNAVAILABLE, "down", retry_after=5)
            return body, {}

    endpoint = V2Endpoint()
    breaker = CircuitBreaker("heavy", Circuit(failures=2, window_s=60, cool_down_s=60))
    v2, v1 = GuardedEndpoint(endpoint, breaker), GuardedPredictor(endpoint, breaker)
    assert v2.infer_v2(b"{}", None) == (b"{}", {}) and v2.name == "heavy"
    endpoint.mode = "down"
    with pytest.raises(EndpointError):
        v2.infer_v2(b"{}", None)
    with pytest.raises(EndpointError):
        v1.predict([1])
    with pytest.raises(CircuitOpenError):
        v2.infer_v2(b"{}", None)
    assert endpoint.calls == 3

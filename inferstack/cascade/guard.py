"""Endpoint calls under a latency budget and a circuit breaker.

The call runs on a worker thread and is waited for at most the budget's remainder: when it runs out the caller
answers at once (the call itself ends at the client's read timeout, its answer unused). A call that failed
(5xx, throttled, unreachable) or was cut short after at least `circuit.slow_call_ms` counts against the circuit;
an answer, or the container's own 4xx about the request, counts for it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.budget import Budget
from inferstack.cascade.exceptions import BudgetExceededError, CircuitOpenError
from inferstack.heavy.exceptions import EndpointError, NoCapacityError
from inferstack.observability import emf, registry

T = TypeVar("T")
#: Calls abandoned to their budget keep a thread until their read timeout; bounded, as the circuit opens soon.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="endpoint-call")


def guarded_call(breaker: CircuitBreaker, budget: Budget | None, call: Callable[[], T]) -> T:
    """`call()` if the circuit allows it, within what is left of `budget`."""
    if budget is not None and budget.spent:
        raise BudgetExceededError(budget.total_ms)
    if not breaker.allow():
        registry.model(breaker.name).add(emf.CIRCUIT_OPEN)
        raise CircuitOpenError(breaker.name, breaker.retry_after_s())
    timeout = budget.remaining_s() if budget is not None else None
    future = _POOL.submit(call)
    try:
        result = future.result(timeout)
    except FutureTimeout:
        assert budget is not None and timeout is not None
        if timeout * 1000 >= breaker.config.slow_call_ms:
            breaker.record_failure()
        else:  # too short to tell: the endpoint is not blamed, and a probe is free to go again
            breaker.release_probe()
        raise BudgetExceededError(budget.total_ms) from None
    except NoCapacityError:  # scaling out from zero, as intended: no verdict on the endpoint
        breaker.release_probe()
        raise
    except EndpointError as exc:
        if exc.is_client_error:
            breaker.record_success()
        else:
            breaker.record_failure()
        raise
    except Exception:
        breaker.record_failure()
        raise
    breaker.record_success()
    return result


class GuardedPredictor:
    """A heavy model's `EndpointPredictor` (anything with `predict(raw_inputs)`) behind its circuit breaker."""

    def __init__(self, predictor: Any, breaker: CircuitBreaker) -> None:
        self.predictor, self.breaker = predictor, breaker

    def predict(self, raw_inputs: Any, budget: Budget | None = None) -> dict[str, Any]:
        result: dict[str, Any] = guarded_call(self.breaker, budget, lambda: self.predictor.predict(raw_inputs))
        return result

    def predict_versioned(self, raw_inputs: Any, budget: Budget | None = None) -> tuple[dict[str, Any], str | None]:
        """The outputs and the version that computed them, where the endpoint says (A/B variants)."""
        versioned = getattr(self.predictor, "predict_versioned", None)
        if versioned is None:
            return self.predict(raw_inputs, budget), None
        result: tuple[dict[str, Any], str] = guarded_call(self.breaker, budget, lambda: versioned(raw_inputs))
        return result


class GuardedEndpoint:
    """An `EndpointPredictor` whose Open Inference Protocol calls (`infer_v2`) go through the model's circuit
    breaker too (the same breaker as its /v1 predict's); everything else is the predictor's."""

    def __init__(self, predictor: Any, breaker: CircuitBreaker) -> None:
        self.predictor, self.breaker = predictor, breaker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def predict(self, raw_inputs: Any) -> dict[str, Any]:
        result: dict[str, Any] = guarded_call(self.breaker, None, lambda: self.predictor.predict(raw_inputs))
        return result

    def infer_v2(self, body: bytes, json_length: int | None) -> tuple[bytes, dict[str, str]]:
        result: tuple[bytes, dict[str, str]] = guarded_call(
            self.breaker, None, lambda: self.predictor.infer_v2(body, json_length))
        return result


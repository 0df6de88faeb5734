"""The shared cache table in the emulator (the local twin's `LocalAws`, as `inferstack dev` creates it): one
execution environment's answer serves another's; a new model version misses; an expired item is a miss; an
unreachable table is a miss, never an error. And a heavy model without a fallback: 503 with Retry-After while
its circuit is open, 504 at once when the budget is spent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferstack.api import problems
from inferstack.api.problems import ProblemError
from inferstack.cache.http import Answer, serve
from inferstack.cache.key import CacheKey, digest_json
from inferstack.cache.settings import CacheSettings
from inferstack.cache.store import DynamoStore, ResultCache
from inferstack.cascade.answers import HeavyService
from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.config import Circuit
from inferstack.cascade.guard import GuardedPredictor
from inferstack.heavy.exceptions import EndpointError
from inferstack.manifest import load_manifest
from inferstack_infra.local.aws import LocalAws
from tests.conftest import DIGITS_MANIFEST


@pytest.fixture(scope="module")
def aws(digits_models: Path) -> Iterator[LocalAws]:
    local = LocalAws(load_manifest(DIGITS_MANIFEST))
    local.start()
    yield local
    local.stop()


def environment(aws: LocalAws, clock: Any = None) -> ResultCache:
    """A fresh execution environment: its own (empty) LRU, the shared table."""
    store = DynamoStore(aws.client("dynamodb"), aws.cache_table, 60, model="digits-heavy",
                        **({"clock": clock} if clock else {}))
    return ResultCache(CacheSettings(ttl_s=60, max_entries=10, shared=True), shared=store)


def answer(body: bytes) -> Answer:
    return Answer(200, body, {"content-type": "application/json"})


def test_the_emulator_has_the_cache_table_with_ttl(aws: LocalAws) -> None:
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=aws.cache_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_another_environment_hits_and_a_new_version_misses(aws: LocalAws) -> None:
    digest = digest_json({"pixels": [[1, 2]]}, ["pixels"])
    v1 = CacheKey("digits-heavy", "version-1", digest)
    first = serve(environment(aws), v1, None, lambda: answer(b'{"outputs":{"label":[1]}}'))
    assert first.headers["x-cache"] == "miss"
    # GIVEN another execution environment (empty LRU) WHEN the same request comes THEN the table answers
    calls: list[int] = []
    elsewhere = serve(environment(aws), v1, None, lambda: (calls.append(1), answer(b"recomputed"))[1])
    assert elsewhere.headers["x-cache"] == "hit" and elsewhere.body == first.body and calls == []
    # WHEN the model's version changes THEN the same inputs miss (never an old version's answer)
    v2 = CacheKey("digits-heavy", "version-2", digest)
    fresh = serve(environment(aws), v2, None, lambda: answer(b'{"outputs":{"label":[7]}}'))
    assert fresh.headers["x-cache"] == "miss" and fresh.body != first.body and fresh.headers["etag"] != first.headers[
        "etag"]


def test_an_expired_item_is_a_miss_before_dynamodb_deletes_it(aws: LocalAws) -> None:
    now = [1_000_000.0]
    cache = environment(aws, clock=lambda: now[0])
    cache.put("expiring", b"x")
    assert environment(aws, clock=lambda: now[0]).get("expiring") == b"x"
    now[0] += 61
    assert environment(aws, clock=lambda: now[0]).get("expiring") is None


def test_an_unreachable_table_is_a_miss_not_an_error(aws: LocalAws) -> None:
    store = DynamoStore(aws.client("dynamodb"), "no-such-table", 60, model="m")
    cache = ResultCache(CacheSettings(shared=True), shared=store)
    result = serve(cache, CacheKey("m", "v", "d"), None, lambda: answer(b"computed"))
    assert result.status == 200 and result.body == b"computed"


class DownEndpoint:
    def __init__(self) -> None:
        self.calls = 0

    def predict(self, raw: Any) -> dict[str, Any]:
        self.calls += 1
        raise EndpointError(problems.UNAVAILABLE, "down", retry_after=5)


def test_without_a_fallback_an_open_circuit_is_a_503_with_retry_after() -> None:
    endpoint = DownEndpoint()
    service = HeavyService("big", "v1", ["x"], GuardedPredictor(endpoint, CircuitBreaker(
        "big", Circuit(failures=2, window_s=60, cool_down_s=30))))
    for _ in range(2):
        with pytest.raises(EndpointError):
            service.answer([[1.0]], {})
    with pytest.raises(ProblemError) as caught:
        service.answer([[1.0]], {"X-Latency-Budget-Ms": "500"})
    assert caught.value.problem.status == 503 and caught.value.headers["Retry-After"] == "30"
    assert endpoint.calls == 2


def test_without_a_fallback_a_spent_budget_is_a_504_at_once() -> None:
    class Slow:
        def __init__(self) -> None:
            self.gate = threading.Event()

        def predict(self, raw: Any) -> dict[str, Any]:
            self.gate.wait(10)
            return {"y": raw}

    slow = Slow()
    service = HeavyService("big", "v1", ["x"], GuardedPredictor(slow, CircuitBreaker("big", Circuit())))
    try:
        with pytest.raises(ProblemError) as caught:
            service.answer([[1.0]], {"x-latency-budget-ms": "50"})
        assert caught.value.problem.status == 504 and caught.value.extensions["budget_ms"] == 50
    finally:
        slow.gate.set()

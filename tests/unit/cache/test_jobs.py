"""Jobs complete from the cache: only the jobs without a cached answer reach the model; errors are not kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inferstack.cache.jobs import CachingRunner
from inferstack.cache.settings import CacheSettings
from inferstack.cache.store import ResultCache
from inferstack.jobs.worker import Errored, Outcome, Succeeded


class Inner:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        self.seen += list(inputs)
        return [Errored("boom") if raw == [[0]] else Succeeded({"y": raw}) for raw in inputs]

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return [Succeeded({"v2": r}) for r in requests]


def test_cached_jobs_skip_the_model_and_errors_are_not_kept() -> None:
    inner = Inner()
    runner = CachingRunner(inner, ResultCache(CacheSettings()), model="m", version="v1", input_names=["x"])
    first = runner.run([[[1]], {"x": [[2]]}, [[0]]])
    assert first == [Succeeded({"y": [[1]]}), Succeeded({"y": {"x": [[2]]}}), Errored("boom")]
    # the same inputs again, one written another way: only the failed one runs again
    second = runner.run([{"x": [[1.0]]}, [[0]], [[2]]])
    assert inner.seen[3:] == [[[0]]]
    assert second == [Succeeded({"y": [[1]]}), Errored("boom"), Succeeded({"y": {"x": [[2]]}})]
    assert runner.run_v2(["r"]) == [Succeeded({"v2": "r"})]

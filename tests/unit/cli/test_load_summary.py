"""`inferstack load`'s summary counts cache hits and degraded answers from the answers' headers."""

from __future__ import annotations

from inferstack_infra.load import LoadResult, Sample


def test_summary_counts_cache_hits_misses_and_degraded_answers() -> None:
    result = LoadResult(1.0, [Sample(0, 0.01, 200, "predict", "hit"), Sample(0, 0.02, 200, "predict", "miss"),
                              Sample(0, 0.02, 200, "predict", "miss", "budget"), Sample(0, 0.02, 503, "predict")])
    summary = result.summary()
    assert (summary["cache_hits"], summary["cache_misses"], summary["degraded"]) == (1, 2, 1)
    assert summary["ok"] == 3 and summary["errors"] == 1

"""The LRU, the tiered cache, and the HTTP semantics of `serve`: 304, hit, miss, never an error cached."""

from __future__ import annotations

import pytest

from inferstack.api import problems
from inferstack.api.problems import ProblemError
from inferstack.cache.http import Answer, etag_matches, serve
from inferstack.cache.key import CacheKey
from inferstack.cache.settings import CacheSettings
from inferstack.cache.store import LruStore, ResultCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DictStore:
    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}
        self.gets = 0

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        return self.items.get(key)

    def put(self, key: str, body: bytes) -> None:
        self.items[key] = body


def test_lru_evicts_the_least_recently_used_and_expires_by_ttl() -> None:
    clock = Clock()
    lru = LruStore(max_entries=2, ttl_s=10, clock=clock)
    lru.put("a", b"1")
    lru.put("b", b"2")
    assert lru.get("a") == b"1"  # a is now the most recent
    lru.put("c", b"3")
    assert lru.get("b") is None and lru.get("a") == b"1" and lru.get("c") == b"3"
    clock.now += 10
    assert lru.get("a") is None and len(lru) == 1


def test_a_shared_hit_fills_the_local_lru() -> None:
    shared = DictStore()
    shared.put("k", b"answer")
    cache = ResultCache(CacheSettings(ttl_s=60, max_entries=10), shared=shared)
    assert cache.get("k") == b"answer" and shared.gets == 1
    assert cache.get("k") == b"answer" and shared.gets == 1  # from memory now
    assert cache.get("other") is None and cache.hits == 2 and cache.misses == 1
    cache.put("new", b"x")
    assert shared.items["new"] == b"x"


def test_etag_matching_follows_if_none_match() -> None:
    assert etag_matches('"abc"', '"abc"')
    assert etag_matches('W/"abc", "def"', '"abc"')
    assert etag_matches("*", '"abc"')
    assert not etag_matches('"abd"', '"abc"')
    assert not etag_matches(None, '"abc"')


def test_serve_miss_then_hit_with_the_same_body_and_etag_then_304() -> None:
    cache = ResultCache(CacheSettings(ttl_s=30, max_entries=10))
    key = CacheKey("m", "v1", "d")
    calls: list[int] = []

    def compute() -> Answer:
        calls.append(1)
        return Answer(200, b'{"outputs":1}', {"content-type": "application/json"})

    miss = serve(cache, key, None, compute)
    hit = serve(cache, key, None, compute)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.body == hit.body and miss.headers["etag"] == hit.headers["etag"] == key.etag
    assert hit.headers["cache-control"] == "private, max-age=30"
    not_modified = serve(cache, key, key.etag, compute)
    assert not_modified.status == 304 and not_modified.body == b""
    assert len(calls) == 1


def test_errors_and_degraded_answers_are_never_cached() -> None:
    cache = ResultCache(CacheSettings())
    key = CacheKey("m", "v1", "d")

    def failing() -> Answer:
        raise ProblemError(problems.BAD_GATEWAY, "down")

    with pytest.raises(ProblemError):
        serve(cache, key, None, failing)
    degraded = serve(cache, key, None, lambda: Answer(200, b"early", {}, cacheable=False))
    assert degraded.headers["x-cache"] == "miss" and degraded.headers["cache-control"] == "no-store"
    assert cache.get(key.id) is None

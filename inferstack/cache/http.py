"""The cache's HTTP semantics, shared by every front door that caches (the light function's lean path, the
heavy proxy, cascades): `ETag` on every answer, `If-None-Match` -> `304`, `Cache-Control` from the manifest,
`x-cache: hit|miss`. Errors are never stored: `compute` raises, and nothing is put."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from inferstack.cache.key import CacheKey
from inferstack.cache.store import ResultCache

X_CACHE = "x-cache"


@dataclass
class Answer:
    """A response to send: status, headers and body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: A degraded answer (an earlier stage or a fallback spoke) is sent but never cached.
    cacheable: bool = True


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*`, or a list of entity tags compared weakly (`W/` ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def cache_headers(cache: ResultCache, key: CacheKey, *, hit: bool) -> dict[str, str]:
    return {"etag": key.etag, "cache-control": f"private, max-age={cache.config.ttl_s}",
            X_CACHE: "hit" if hit else "miss"}


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header, whatever its case (API Gateway's events keep the client's)."""
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v
    return None


def serve(cache: ResultCache, key: CacheKey, if_none_match: str | None, compute: Callable[[], Answer]) -> Answer:
    """Answer from the cache, or compute and keep the answer (only a 200 is kept)."""
    if etag_matches(if_none_match, key.etag):
        return Answer(304, b"", cache_headers(cache, key, hit=True))
    body = cache.get(key.id)
    if body is not None:
        return Answer(200, body, {"content-type": "application/json", **cache_headers(cache, key, hit=True)})
    answer = compute()
    if answer.status == 200 and answer.cacheable:
        cache.put(key.id, answer.body)
        answer.headers.update(cache_headers(cache, key, hit=False))
    elif answer.status == 200:
        answer.headers.update({X_CACHE: "miss", "cache-control": "no-store"})
    return answer

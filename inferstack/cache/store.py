"""Where answers are kept: an LRU in this execution environment's memory, and the deployment's shared table.

A cache never fails a request: a store that cannot be reached is a miss (and is logged). Only successful
answers are ever stored (callers store after a 200).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from inferstack.cache.settings import CacheSettings
from inferstack.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Clock = Callable[[], float]
#: DynamoDB items hold at most 400 KB; larger answers stay in memory only.
MAX_SHARED_BYTES = 380 * 1024


class Store(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, body: bytes) -> None: ...


class LruStore:
    """At most `max_entries` answers, each for `ttl_s`; the least recently used goes first. Thread-safe."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self.max_entries, self.ttl_s, self.clock = max_entries, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self.clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._items[key] = (self.clock() + self.ttl_s, body)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


class DynamoStore:
    """The shared cache table: `pk` (the key), `body` (the answer, zlib-compressed), `expires_at` (the table's
    TTL attribute, epoch seconds). DynamoDB deletes expired items lazily, so reads check `expires_at` too."""

    def __init__(self, client: DynamoDBClient, table: str, ttl_s: float, *, model: str,
                 clock: Clock = time.time) -> None:
        self.client, self.table, self.ttl_s, self.model, self.clock = client, table, ttl_s, model, clock

    def get(self, key: str) -> bytes | None:
        try:
            item = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}}).get("Item")
        except Exception as exc:  # botocore's errors: a cache outage is a miss
            logger.warning("cache table unreachable: a miss", extra={"model": self.model, "error": repr(exc)[:300]})
            return None
        if not item or float(item["expires_at"]["N"]) <= self.clock():
            return None
        return zlib.decompress(item["body"]["B"])

    def put(self, key: str, body: bytes) -> None:
        packed = zlib.compress(body, 1)
        if len(packed) > MAX_SHARED_BYTES:
            return
        try:
            self.client.put_item(TableName=self.table, Item={
                "pk": {"S": key}, "body": {"B": packed}, "model": {"S": self.model},
                "expires_at": {"N": str(int(self.clock() + self.ttl_s))}})
        except Exception as exc:
            logger.warning("cache table unreachable: answer not shared", extra={"model": self.model,
                                                                                "error": repr(exc)[:300]})


class ResultCache:
    """The LRU in front of the shared store (where there is one); a shared hit is kept in the LRU too."""

    def __init__(self, config: CacheSettings, *, shared: Store | None = None, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.local = LruStore(config.max_entries, config.ttl_s, clock)
        self.shared = shared
        self.hits = self.misses = 0

    def get(self, key: str) -> bytes | None:
        body = self.local.get(key)
        if body is None and self.shared is not None:
            body = self.shared.get(key)
            if body is not None:
                self.local.put(key, body)
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
        return body

    def put(self, key: str, body: bytes) -> None:
        self.local.put(key, body)
        if self.shared is not None:
            self.shared.put(key, body)

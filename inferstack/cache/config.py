"""`[[models]] cache = { ttl_s = 3600, max_entries = 1024 }` (and the same on a `[[cascades]]` table).

Opt-in per model. `ttl_s`: how long an answer is served from the cache (and the `max-age` of `Cache-Control`);
`max_entries`: the in-memory LRU's size in each execution environment. `shared`: also keep answers in the
deployment's cache table (DynamoDB, on-demand, TTL), so that every execution environment shares them; default on
for heavy models and cascades, where a hit saves an endpoint call, off for light models, whose answer costs less
than a DynamoDB read.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: A week: answers older than that belong to traffic patterns the cache no longer helps.
MAX_TTL_S = 7 * 24 * 3600


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_s: Annotated[int, Field(ge=1, le=MAX_TTL_S)] = 3600
    max_entries: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    shared: bool | None = None

    def uses_table(self, *, heavy: bool) -> bool:
        return self.shared if self.shared is not None else heavy

    def to_env(self, *, heavy: bool) -> str:
        """What a function is told (`$INFERSTACK_CACHE`, read by `inferstack.cache.settings`)."""
        return json.dumps({"ttl_s": self.ttl_s, "max_entries": self.max_entries,
                           "shared": self.uses_table(heavy=heavy)}, separators=(",", ":"))

"""A function's cache settings, read from `$INFERSTACK_CACHE` without pydantic (the light predict function's
cold path stays free of it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from inferstack import env


@dataclass(frozen=True)
class CacheSettings:
    ttl_s: int = 3600
    max_entries: int = 1024
    #: Also keep answers in the deployment's shared table.
    shared: bool = False


def settings_from_env() -> CacheSettings | None:
    """The cache of the model (or cascade) this function serves, None when it caches nothing."""
    raw = os.environ.get(env.CACHE)
    if not raw:
        return None
    values = json.loads(raw)
    return CacheSettings(ttl_s=int(values["ttl_s"]), max_entries=int(values["max_entries"]),
                         shared=bool(values.get("shared")))

"""Jobs that complete from the cache: a heavy model's worker looks each job's inputs up in the model's cache (the
shared table, where the predict route's answers are too) and sends only the others to the endpoint; what the
endpoint answers is kept for the next request or job. Open Inference Protocol jobs pass through."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from inferstack.api.predict import predict_body
from inferstack.cache.key import CacheKey, digest_json
from inferstack.cache.store import ResultCache
from inferstack.jobs.worker import Outcome, Runner, Succeeded
from inferstack.observability import emf, registry


class CachingRunner:
    """A `Runner` in front of another, for a model whose answers are cached (keys as the predict route's)."""

    def __init__(self, inner: Runner, cache: ResultCache, *, model: str, version: str,
                 input_names: Sequence[str]) -> None:
        self.inner, self.cache = inner, cache
        self.model, self.version, self.input_names = model, version, list(input_names)

    def _key(self, raw: Any) -> CacheKey:
        return CacheKey(self.model, self.version, digest_json(raw, self.input_names))

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        keys = [self._key(raw) for raw in inputs]
        outcomes: list[Outcome | None] = []
        for key in keys:
            body = self.cache.get(key.id)
            outcomes.append(Succeeded(json.loads(body)["outputs"]) if body is not None else None)
        missing = [i for i, o in enumerate(outcomes) if o is None]
        metrics = registry.model(self.model)
        metrics.add(emf.CACHE_HITS, len(inputs) - len(missing))
        metrics.add(emf.CACHE_MISSES, len(missing))
        if missing:
            for i, outcome in zip(missing, self.inner.run([inputs[i] for i in missing]), strict=True):
                outcomes[i] = outcome
                if isinstance(outcome, Succeeded):  # never an error
                    self.cache.put(keys[i].id, predict_body(self.model, self.version, outcome.outputs))
        return [o for o in outcomes if o is not None]

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return self.inner.run_v2(requests)

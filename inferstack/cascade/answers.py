"""HTTP answers of a cascade's predict route and of a heavy model's guarded predict route: budget from the
request's header, cache around the whole answer, `x-degraded` when an earlier stage or a fallback answered."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from inferstack.api.predict import predict_body
from inferstack.cache.http import Answer, header, serve
from inferstack.cache.key import CacheKey, digest_arrays, digest_json
from inferstack.cache.store import ResultCache
from inferstack.cascade.budget import HEADER, parse_budget
from inferstack.cascade.exceptions import BudgetExceededError, CircuitOpenError
from inferstack.cascade.guard import GuardedPredictor
from inferstack.cascade.runner import CascadeRunner
from inferstack.heavy.exceptions import EndpointError
from inferstack.observability import emf, logger, registry
from inferstack.rollout import MODEL_VERSION_HEADER

X_DEGRADED = "x-degraded"
_JSON = {"content-type": "application/json"}


def _count(name: str, answer: Answer, *, cached: bool) -> Answer:
    """Per model (or cascade) counters: cache hits and misses, degraded answers."""
    metrics = registry.model(name)
    if cached and answer.status in (200, 304):
        metrics.add(emf.CACHE_HITS if answer.headers.get("x-cache") == "hit" else emf.CACHE_MISSES)
    if X_DEGRADED in answer.headers:
        metrics.add(emf.DEGRADED)
    return answer


def cascade_answer(runner: CascadeRunner, first: Any, raw_inputs: Any, *, cache: ResultCache | None,
                   headers: Mapping[str, str] | None, default_budget_ms: int | None) -> Answer:
    """`first`: the first stage's predictor, which validates the inputs (every stage shares its signature)."""
    budget = parse_budget(header(headers, HEADER), default_budget_ms)
    arrays = first.prepare(raw_inputs).arrays

    def compute() -> Answer:
        result = runner.run(arrays, budget)
        registry.model(runner.name).add(emf.ESCALATED_ROWS, result.escalated)
        document: dict[str, Any] = {
            "cascade": runner.name, "outputs": {k: v.tolist() for k, v in result.outputs.items()},
            "stage": result.stage, "escalated": result.escalated,
            "versions": {s.name: s.version for s in runner.stages}}
        out_headers = dict(_JSON)
        if result.degraded:
            document["degraded"] = True
            document["degraded_reason"] = result.degraded
            out_headers[X_DEGRADED] = result.degraded
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        return Answer(200, body, out_headers, cacheable=result.degraded is None)

    if cache is None:
        return _count(runner.name, compute(), cached=False)
    return _count(runner.name, serve(cache, CacheKey(runner.name, runner.version, digest_arrays(arrays)),
                                     header(headers, "if-none-match"), compute), cached=True)


class HeavyService:
    """A heavy model's predict: its endpoint behind the circuit breaker and the budget; the manifest's
    `fallback` (a light model in this process) answers, marked degraded, when the endpoint cannot; without one,
    503 with Retry-After (circuit open) or 504 (budget spent) at once."""

    def __init__(self, name: str, version: str, input_names: Sequence[str], guarded: GuardedPredictor, *,
                 budget_ms: int | None = None, cache: ResultCache | None = None, fallback: Any = None) -> None:
        self.name, self.version, self.input_names = name, version, list(input_names)
        self.guarded, self.budget_ms, self.cache, self.fallback = guarded, budget_ms, cache, fallback

    def answer(self, raw_inputs: Any, headers: Mapping[str, str] | None) -> Answer:
        budget = parse_budget(header(headers, HEADER), self.budget_ms)

        def compute() -> Answer:
            try:
                outputs, answered_by = self.guarded.predict_versioned(raw_inputs, budget)
            except (BudgetExceededError, CircuitOpenError, EndpointError) as exc:
                reason = getattr(exc, "degraded", "unavailable")
                if self.fallback is None or (isinstance(exc, EndpointError) and exc.is_client_error):
                    raise
                logger.info("fallback answered", extra={"model": self.name, "fallback": self.fallback.name,
                                                        "reason": reason})
                document = {"model": self.name, "version": self.fallback.version,
                            "outputs": self.fallback.predict(raw_inputs), "degraded": True,
                            "degraded_reason": reason, "answered_by": self.fallback.name}
                body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
                return Answer(200, body, {**_JSON, X_DEGRADED: reason, MODEL_VERSION_HEADER: self.fallback.version},
                              cacheable=False)
            version = answered_by or self.version
            return Answer(200, predict_body(self.name, version, outputs), {**_JSON, MODEL_VERSION_HEADER: version})

        if self.cache is None:
            return _count(self.name, compute(), cached=False)
        key = CacheKey(self.name, self.version, digest_json(raw_inputs, self.input_names))
        return _count(self.name, serve(self.cache, key, header(headers, "if-none-match"), compute), cached=True)

"""The local stack's metrics, as CloudWatch would hold them for the deployed one, for the last few minutes.

Fed from where AWS gets the same numbers:
- the gateway, per request (API Gateway's `Count`, `4XXError`, `5XXError`, `Latency` per route);
- the EMF documents that the functions and the heavy container print (CloudWatch Logs turns those into metrics;
  here `ingest_line` takes them out of the stack's log): a model's inference time, batch sizes, queue depth,
  jobs' outcomes, webhook attempts ...;
- the queues' attributes, sampled every second while someone watches the dashboard (SQS's
  `ApproximateNumberOfMessagesVisible` and `...NotVisible`).

Memory is bounded: one-second buckets over `RETAIN_S`, and at most `MAX_SAMPLES` latencies a bucket.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RETAIN_S = 600
MAX_SAMPLES = 2000
#: Percentiles of a second are read over this many seconds up to it (a second alone holds too few requests).
PERCENTILE_WINDOW_S = 5
_MODEL_PATH = re.compile(r"^/v[12]/(?:models|cascades)/([^/]+)(?:/versions/[^/]+)?/(?:predict|infer)$")
STATUS_CLASSES = ("2xx", "4xx", "429", "5xx")
QUANTILES = (50, 95, 99)


def status_class(status: int) -> str:
    if status == 429:
        return "429"
    return "2xx" if status < 400 else "4xx" if status < 500 else "5xx"


@dataclass
class _Bucket:
    """One second of one series."""

    counts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gauges: dict[str, float] = field(default_factory=dict)


class Series:
    """One-second buckets of one subject (a route, a model, a queue). A second is complete once the clock has left
    it (values are filed on arrival), so what is computed of it is kept: each poll of the dashboard computes only
    the newest second."""

    def __init__(self) -> None:
        self.buckets: dict[int, _Bucket] = {}
        self._computed: dict[tuple[str, str, int], Any] = {}

    def bucket(self, second: int) -> _Bucket:
        found = self.buckets.get(second)
        if found is None:
            found = self.buckets[second] = _Bucket()
            for old in [s for s in self.buckets if s < second - RETAIN_S]:
                del self.buckets[old]
            for key in [k for k in self._computed if k[2] < second - RETAIN_S]:
                del self._computed[key]
        return found

    def add(self, second: int, name: str, value: float = 1.0) -> None:
        self.bucket(second).counts[name] += value

    def sample(self, second: int, name: str, value: float) -> None:
        samples = self.bucket(second).samples[name]
        if len(samples) < MAX_SAMPLES:
            samples.append(value)

    def gauge(self, second: int, name: str, value: float) -> None:
        self.bucket(second).gauges[name] = value

    def counts(self, name: str, seconds: list[int]) -> list[float]:
        return [self.buckets[s].counts.get(name, 0.0) if s in self.buckets else 0.0 for s in seconds]

    def gauges(self, name: str, seconds: list[int]) -> list[float | None]:
        last: float | None = None
        out: list[float | None] = []
        for s in seconds:
            b = self.buckets.get(s)
            if b is not None and name in b.gauges:
                last = b.gauges[name]
            out.append(last)
        return out

    def _values(self, name: str, second: int, window: int) -> list[float]:
        return [v for w in range(second - window + 1, second + 1) if w in self.buckets
                for v in self.buckets[w].samples.get(name, ())]

    def _each(self, name: str, kind: str, seconds: list[int], compute: Callable[[list[float]], Any]) -> list[Any]:
        """`compute` of each (complete) second's values, computed once."""
        out = []
        for s in seconds:
            key = (name, kind, s)
            if key not in self._computed:
                self._computed[key] = compute(self._values(name, s, PERCENTILE_WINDOW_S if kind == "p" else 1))
            out.append(self._computed[key])
        return out

    def stats(self, name: str, seconds: list[int], how: str) -> list[float | None]:
        """Each second's mean or max."""
        def compute(values: list[float]) -> float | None:
            return round(float(np.mean(values) if how == "mean" else max(values)), 3) if values else None
        return self._each(name, how, seconds, compute)

    def percentiles(self, name: str, seconds: list[int]) -> dict[str, list[float | None]]:
        """p50, p95 and p99 of each second, over the `PERCENTILE_WINDOW_S` seconds up to it."""
        def compute(values: list[float]) -> tuple[float | None, ...]:
            if not values:
                return (None, None, None)
            return tuple(round(float(v), 3) for v in np.percentile(values, QUANTILES))
        rows = self._each(name, "p", seconds, compute)
        return {f"p{q}": [r[i] for r in rows] for i, q in enumerate(QUANTILES)}


class MetricsStore:
    def __init__(self, models: Iterable[tuple[str, str]] = (), clock: Callable[[], float] = time.time) -> None:
        """`models`: (name, tier) of each model of the manifest: each gets its panel even before its first call."""
        self.clock = clock
        self.lock = threading.Lock()
        self.tiers = dict(models)
        self.routes: dict[str, Series] = defaultdict(Series)
        self.models: dict[str, Series] = defaultdict(Series)
        self.queues: dict[str, Series] = defaultdict(Series)
        self.total = Series()
        self.requests = 0
        self.watched_at = 0.0
        self.started = self._second()

    def _second(self, at: float | None = None) -> int:
        return int(self.clock() if at is None else at)

    # --- feeds ---
    def request(self, method: str, route: str | None, path: str, status: int, ms: float) -> None:
        """One answer of the gateway."""
        second, kind = self._second(), status_class(status)
        m = _MODEL_PATH.match(path)
        model = m.group(1) if m and m.group(1) in self.tiers else None
        with self.lock:
            self.requests += 1
            series = [self.total, self.routes[f"{method} {route or '(no route)'}"]]
            if model:
                series.append(self.models[model])
            for s in series:
                s.add(second, "requests")
                s.add(second, kind)
                s.sample(second, "latency", ms)

    def ingest_line(self, line: str) -> bool:
        """Take an EMF document out of a log line; True if it was one (the console then leaves it out)."""
        text = line.strip()
        if not (text.startswith("{") and '"_aws"' in text):
            return False
        try:
            doc = json.loads(text)
            self.ingest(doc)
        except (ValueError, KeyError, TypeError):
            return False
        return True

    def ingest(self, doc: dict[str, Any]) -> None:
        """An EMF document: each metric it declares, on its `model` (documents without one are dropped)."""
        model = doc.get("model")
        if not isinstance(model, str):
            return
        second = self._second()  # on arrival: the functions flush at the end of each call, the container each second
        with self.lock:
            series = self.models[model]
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    name = metric["Name"]
                    value = doc.get(name)
                    values = value if isinstance(value, list) else [value]
                    for v in values:
                        if isinstance(v, (int, float)):
                            series.add(second, name, v)
                            series.sample(second, name, v)

    def queue(self, key: str, visible: int, in_flight: int) -> None:
        second = self._second()
        with self.lock:
            self.queues[key].gauge(second, "visible", visible)
            self.queues[key].gauge(second, "in_flight", in_flight)

    def watched(self, within_s: float = 30) -> bool:
        return self.clock() - self.watched_at < within_s

    # --- the dashboard's view ---
    def snapshot(self, window_s: int = 120) -> dict[str, Any]:
        self.watched_at = self.clock()
        now = self._second() - 1  # the current second is still filling
        seconds = list(range(max(now - window_s + 1, self.started - 1), now + 1))  # nothing before the stack ran
        with self.lock:
            return {
                "now": now, "t": seconds, "requests": self.requests,
                "total": {k: self.total.counts(k, seconds) for k in ("requests", *STATUS_CLASSES)},
                "routes": {name: {"requests": s.counts("requests", seconds), **s.percentiles("latency", seconds)}
                           for name, s in sorted(self.routes.items())},
                "models": {name: self._model(name, seconds) for name in sorted({*self.tiers, *self.models})},
                "queues": {key: {"visible": s.gauges("visible", seconds), "in_flight": s.gauges("in_flight", seconds)}
                           for key, s in sorted(self.queues.items())},
            }

    def _model(self, name: str, seconds: list[int]) -> dict[str, Any]:
        s = self.models[name]
        queue = self.queues.get(f"jobs-{name}")
        dlq = self.queues.get(f"jobs-{name}-dlq")
        return {
            "tier": self.tiers.get(name, "?"),
            "requests": s.counts("requests", seconds),
            **{k: s.counts(k, seconds) for k in STATUS_CLASSES},
            "latency": s.percentiles("latency", seconds),
            "inference": s.percentiles("InferenceLatency", seconds),
            "batch": {"mean": s.stats("BatchSize", seconds, "mean"), "max": s.stats("BatchSize", seconds, "max"),
                      "queue_depth": s.stats("QueueDepth", seconds, "max")},
            "jobs": {"queued": queue.gauges("visible", seconds) if queue else [None] * len(seconds),
                     "running": queue.gauges("in_flight", seconds) if queue else [None] * len(seconds),
                     "succeeded": s.counts("JobsSucceeded", seconds), "failed": s.counts("JobsFailed", seconds),
                     "dead_letters": dlq.gauges("visible", seconds) if dlq else [None] * len(seconds)},
            "webhooks": {k: s.counts(n, seconds) for k, n in (
                ("delivered", "WebhookDelivered"), ("retried", "WebhookRetried"), ("gave_up", "WebhookGaveUp"))},
            "answers": {k: s.counts(n, seconds) for k, n in (
                ("cache_hits", "CacheHits"), ("cache_misses", "CacheMisses"), ("escalated", "EscalatedRows"),
                ("degraded", "Degraded"), ("circuit_open", "CircuitOpen"))},
        }

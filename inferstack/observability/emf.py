"""Per-model metrics in CloudWatch's embedded metric format (EMF): log lines that CloudWatch turns into
metrics, with no API call on the request path.

Every function and the heavy container keep one `ModelMetrics` per model (and version) they serve, add to it
as requests, batches, jobs and webhook attempts go by, and `flush` it: after each Lambda invocation, or every
second in the container. A flush prints one JSON document per model, built by Powertools Metrics, whose
metrics have the dimension sets `[service, model, version]` and `[service, model]` (the second one is what the
dashboard and the alarms read: it spans versions, so a rollout does not split a model's graphs). Validation
failures go in a document of their own with a `kind` dimension (the problem type: `invalid-input`,
`malformed-json`, ...).

The metric names are the constants below; the dashboard (`inferstack_infra/constructs/monitoring.py`) and the
local dashboard read the same ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from inferstack.observability.tracing import trace_id

NAMESPACE = "inferstack"
#: The deployment (the manifest's name: every function and container is told it), so that two stacks in one
#: account keep their metrics apart.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "inferstack"

# requests, as the function or the container that answered them sees them
REQUESTS = "Requests"
STATUS_2XX, STATUS_4XX, STATUS_5XX = "Status2xx", "Status4xx", "Status5xx"
LATENCY = "Latency"                      # end to end inside the function or container, ms
INFERENCE_LATENCY = "InferenceLatency"  # the model's run alone, ms
PREPROCESS_LATENCY = "PreprocessLatency"  # validation, or a handler model's parse + preprocess, ms
POSTPROCESS_LATENCY = "PostprocessLatency"
ROWS = "Rows"                            # rows (leading axis) of one request
COLD_STARTS = "ColdStart"
VALIDATION_FAILURES = "ValidationFailures"  # with the `kind` dimension
# the heavy container's dynamic batcher
BATCH_SIZE = "BatchSize"                # rows in one batched run
QUEUE_DEPTH = "QueueDepth"              # requests waiting for the batcher when a batch starts
# jobs
JOBS_SUBMITTED, JOBS_SUCCEEDED, JOBS_FAILED = "JobsSubmitted", "JobsSucceeded", "JobsFailed"
JOB_QUEUE_WAIT = "JobQueueWait"         # from submission to the worker taking it, ms
JOB_RUN_TIME = "JobRunTime"             # the worker's run of the job's batch, ms
JOB_BATCH_SIZE = "JobBatchSize"         # jobs run in one worker call
# webhooks, by outcome of each attempt
WEBHOOK_ATTEMPTS = "WebhookAttempts"
WEBHOOK_DELIVERED = "WebhookDelivered"  # a 2xx
WEBHOOK_RETRIED = "WebhookRetried"      # not delivered, tried again later
WEBHOOK_GAVE_UP = "WebhookGaveUp"       # not delivered, and no attempt left (or 410 Gone, or refused)
# result cache, cascades, budgets and circuit breakers (inferstack.cache, inferstack.cascade)
CACHE_HITS, CACHE_MISSES = "CacheHits", "CacheMisses"
ESCALATED_ROWS = "EscalatedRows"        # a cascade's rows sent past its first stage
DEGRADED = "Degraded"                   # answers from an earlier stage or a fallback (budget, circuit open, down)
CIRCUIT_OPEN = "CircuitOpen"            # calls refused by an open circuit

UNITS: dict[str, MetricUnit] = {
    LATENCY: MetricUnit.Milliseconds, INFERENCE_LATENCY: MetricUnit.Milliseconds,
    PREPROCESS_LATENCY: MetricUnit.Milliseconds, POSTPROCESS_LATENCY: MetricUnit.Milliseconds,
    JOB_QUEUE_WAIT: MetricUnit.Milliseconds, JOB_RUN_TIME: MetricUnit.Milliseconds,
}
#: Metrics that are counted (one value per flush: their sum), the others keep every value (a distribution).
COUNTERS = frozenset({REQUESTS, STATUS_2XX, STATUS_4XX, STATUS_5XX, COLD_STARTS, JOBS_SUBMITTED, JOBS_SUCCEEDED,
                      JOBS_FAILED, WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERED, WEBHOOK_RETRIED, WEBHOOK_GAVE_UP,
                      CACHE_HITS, CACHE_MISSES, ESCALATED_ROWS, DEGRADED, CIRCUIT_OPEN})
#: EMF takes at most 100 values per metric in one document; Powertools prints a document by itself (around
#: `emit`) when a metric reaches 100, so a document here holds at most 99.
MAX_VALUES = 99

Emit = Callable[[str], None]


def status_metric(status: int) -> str:
    return STATUS_2XX if status < 400 else STATUS_4XX if status < 500 else STATUS_5XX


@dataclass
class _Pending:
    values: dict[str, list[float]]
    kinds: dict[str, int]


class ModelMetrics:
    """The metrics of one model (and version) in this process, flushed as EMF documents. Thread-safe."""

    def __init__(self, model: str, version: str | None = None, *, emit: Emit = print) -> None:
        self.model, self.version, self.emit = model, version, emit
        self._lock = threading.Lock()
        self._pending = _Pending({}, {})
        self._cold = True
        #: Distributions also summed up in each document as plain members (`<name>Sum`, `<name>Count`,
        #: `<name>Max`): where no EMF extraction happens (a SageMaker container's log), metric filters read those.
        self.summaries: frozenset[str] = frozenset()

    def add(self, name: str, value: float = 1.0) -> None:
        with self._lock:
            values = self._pending.values.setdefault(name, [])
            if name in COUNTERS and values:
                values[0] += value
            else:
                values.append(float(value))
            full = len(values) >= MAX_VALUES
        if full:
            self.flush()

    def request(self, status: int, latency_ms: float, *, rows: int | None = None,
                inference_ms: float | None = None, kind: str | None = None) -> None:
        """One answered request: its status class, latency, rows; `kind` names a 4xx's problem type."""
        if self._cold:
            self._cold = False
            self.add(COLD_STARTS)
        self.add(REQUESTS)
        self.add(status_metric(status))
        self.add(LATENCY, latency_ms)
        if rows is not None:
            self.add(ROWS, rows)
        if inference_ms is not None:
            self.add(INFERENCE_LATENCY, inference_ms)
        if kind is not None and 400 <= status < 500:
            self.invalid(kind)

    def invalid(self, kind: str) -> None:
        with self._lock:
            self._pending.kinds[kind] = self._pending.kinds.get(kind, 0) + 1

    def documents(self) -> list[dict[str, Any]]:
        """The pending metrics as EMF documents (and forget them)."""
        with self._lock:
            pending, self._pending = self._pending, _Pending({}, {})
        docs: list[dict[str, Any]] = []
        if pending.values:
            m = self._powertools()
            for name, values in pending.values.items():
                for value in values:
                    m.add_metric(name=name, unit=UNITS.get(name, MetricUnit.Count), value=value)
                if name in self.summaries:
                    m.add_metadata(key=f"{name}Sum", value=sum(values))
                    m.add_metadata(key=f"{name}Count", value=len(values))
                    m.add_metadata(key=f"{name}Max", value=max(values))
            doc = cast(dict[str, Any], m.serialize_metric_set())
            if self.version is not None:  # the roll-up across versions, beside [service, model, version]
                doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append(["service", "model"])
            docs.append(doc)
        for kind, count in pending.kinds.items():
            m = self._powertools(version=False)
            m.add_dimension(name="kind", value=kind)
            m.add_metric(name=VALIDATION_FAILURES, unit=MetricUnit.Count, value=count)
            docs.append(cast(dict[str, Any], m.serialize_metric_set()))
        return docs

    def _powertools(self, *, version: bool = True) -> EphemeralMetrics:
        m = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        m.add_dimension(name="model", value=self.model)
        if version and self.version is not None:
            m.add_dimension(name="version", value=self.version)
        tid = trace_id()
        if tid:
            m.add_metadata(key="traceId", value=tid)
        return m

    def flush(self) -> None:
        import json

        for doc in self.documents():
            self.emit(json.dumps(doc, separators=(",", ":")))


class MetricsRegistry:
    """Every `ModelMetrics` of this process, by model and version."""

    def __init__(self, emit: Emit = print) -> None:
        self.emit = emit
        self._models: dict[tuple[str, str | None], ModelMetrics] = {}
        self._lock = threading.Lock()

    def model(self, name: str, version: str | None = None) -> ModelMetrics:
        key = (name, version)
        found = self._models.get(key)
        if found is None:
            with self._lock:
                found = self._models.setdefault(key, ModelMetrics(name, version, emit=self._emit))
        return found

    def _emit(self, line: str) -> None:
        self.emit(line)  # late: tests and the local runtime replace `emit`

    def flush(self) -> None:
        for m in list(self._models.values()):
            m.flush()


registry = MetricsRegistry()


def elapsed_ms(since: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - since) * 1000

"""Per-model metrics as embedded-metric-format documents."""

from __future__ import annotations

import json

import pytest

from inferstack.observability import emf
from inferstack.observability.emf import MetricsRegistry, ModelMetrics
from inferstack.observability.tracing import instance, trace_id
from tests.emf import check_emf, metric_values

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_a_request_becomes_one_valid_document_with_model_and_version_dimensions() -> None:
    # GIVEN a model's metrics
    lines: list[str] = []
    metrics = ModelMetrics("iris", "abc123", emit=lines.append)
    # WHEN two requests are answered and the metrics flushed
    metrics.request(200, 1.5, rows=3, inference_ms=0.2)
    metrics.request(200, 2.5, rows=1, inference_ms=0.3)
    metrics.flush()
    # THEN one EMF document, with both dimension sets, counts summed and latencies kept apart
    assert len(lines) == 1
    doc = json.loads(lines[0])
    check_emf(doc)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "inferstack"
    assert sorted(map(sorted, directive["Dimensions"])) == [["model", "service"], ["model", "service", "version"]]
    assert doc["model"] == "iris" and doc["version"] == "abc123"
    assert doc[emf.REQUESTS] == [2.0] and doc[emf.STATUS_2XX] == [2.0] and doc[emf.COLD_STARTS] == [1.0]
    assert doc[emf.LATENCY] == [1.5, 2.5] and doc[emf.ROWS] == [3.0, 1.0]
    units = {m["Name"]: m.get("Unit") for m in directive["Metrics"]}
    assert units[emf.LATENCY] == "Milliseconds" and units[emf.REQUESTS] == "Count"
    # AND a second flush has nothing left to say; the cold start is counted once
    metrics.flush()
    assert len(lines) == 1
    metrics.request(500, 1.0)
    metrics.flush()
    assert emf.COLD_STARTS not in json.loads(lines[1]) and json.loads(lines[1])[emf.STATUS_5XX] == [1.0]


def test_validation_failures_are_counted_by_kind_in_their_own_document() -> None:
    lines: list[str] = []
    metrics = ModelMetrics("iris", "v1", emit=lines.append)
    metrics.request(422, 1.0, kind="invalid-input")
    metrics.request(422, 1.0, kind="invalid-input")
    metrics.request(400, 1.0, kind="malformed-json")
    metrics.request(503, 1.0, kind="unavailable")  # not a validation failure
    metrics.flush()
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        check_emf(doc)
    assert metric_values(docs, emf.STATUS_4XX) == [3.0] and metric_values(docs, emf.STATUS_5XX) == [1.0]
    by_kind = {d["kind"]: d[emf.VALIDATION_FAILURES] for d in docs if "kind" in d}
    assert by_kind == {"invalid-input": [2.0], "malformed-json": [1.0]}
    kind_doc = next(d for d in docs if "kind" in d)
    assert kind_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "kind", "service"]]


def test_more_than_100_values_are_split_across_documents() -> None:
    lines: list[str] = []
    metrics = ModelMetrics("m", "v", emit=lines.append)
    for i in range(250):
        metrics.add(emf.LATENCY, i)
    metrics.flush()
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        check_emf(doc)
    assert metric_values(docs, emf.LATENCY) == [float(i) for i in range(250)]


def test_a_model_without_a_version_has_the_model_dimension_only() -> None:
    lines: list[str] = []
    metrics = ModelMetrics("iris", emit=lines.append)
    metrics.add(emf.WEBHOOK_ATTEMPTS)
    metrics.flush()
    doc = json.loads(lines[0])
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]] and "version" not in doc


def test_the_trace_id_goes_with_the_metrics_and_into_problem_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trace_id(TRACE) == "1-5759e988-bd862e3fe1be46a994272793"
    assert trace_id("nonsense") is None
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert instance() is None
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    assert instance() == "urn:x-amzn-trace-id:1-5759e988-bd862e3fe1be46a994272793"
    registry = MetricsRegistry(emit=(lines := []).append)
    registry.model("iris", "v1").request(200, 1.0)
    registry.flush()
    assert json.loads(lines[0])["traceId"] == "1-5759e988-bd862e3fe1be46a994272793"


@pytest.mark.parametrize(("status", "name"), [(200, emf.STATUS_2XX), (304, emf.STATUS_2XX), (404, emf.STATUS_4XX),
                                              (429, emf.STATUS_4XX), (502, emf.STATUS_5XX)])
def test_status_classes(status: int, name: str) -> None:
    assert emf.status_metric(status) == name


def test_log_lines_name_the_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from inferstack.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    before = handler.setStream(out)
    try:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
        logger.info("a job failed", extra={"job_id": "j1"})
    finally:
        handler.setStream(before)
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793" and line["job_id"] == "j1"

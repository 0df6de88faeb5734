"""The local twin of the monitoring: the metrics store, what the gateway and the stack's log feed it, and the
dashboard's routes."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from inferstack.manifest import parse_manifest
from inferstack.observability import emf
from inferstack.observability.emf import ModelMetrics
from inferstack.topology import Route
from inferstack_infra.local.gateway import Gateway
from inferstack_infra.local.monitoring import DashboardApp, MetricsStore
from inferstack_infra.local.monitoring.store import MAX_SAMPLES, RETAIN_S
from inferstack_infra.local.stack import LogStream
from tests.conftest import ROOT


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(clock: Clock) -> MetricsStore:
    return MetricsStore([("iris", "light"), ("minilm", "heavy")], clock=clock)


def test_requests_are_counted_per_route_and_model_by_status_class_with_percentiles() -> None:
    # GIVEN a second of answers: 97 fast ones, two slow failures, a throttled one
    clock = Clock()
    s = store(clock)
    for i in range(97):
        s.request("POST", "/v1/models/iris/predict", "/v1/models/iris/predict", 200, 1.0 + i / 100)
    for _ in range(2):
        s.request("POST", "/v1/models/iris/predict", "/v1/models/iris/predict", 500, 200.0)
    s.request("POST", "/v1/models/iris/predict", "/v1/models/iris/predict", 429, 0.1)
    s.request("GET", "/v1/health", "/v1/health", 200, 0.5)
    s.request("GET", None, "/nowhere", 403, 0.2)
    # WHEN the next second the dashboard reads them
    clock.now += 1
    snap = s.snapshot(60)
    # THEN per model, route and in all, by status class; p50 from the fast ones, p99 from the slow ones
    iris = snap["models"]["iris"]
    assert (iris["requests"][-1], iris["2xx"][-1], iris["5xx"][-1], iris["429"][-1], iris["4xx"][-1]) == (
        100, 97, 2, 1, 0)
    assert 1.0 <= iris["latency"]["p50"][-1] <= 2.0 and iris["latency"]["p99"][-1] > 100
    assert snap["models"]["minilm"]["requests"][-1] == 0 and snap["models"]["minilm"]["tier"] == "heavy"
    assert snap["routes"]["GET /v1/health"]["requests"][-1] == 1
    assert snap["routes"]["GET (no route)"]["requests"][-1] == 1
    assert snap["total"]["requests"][-1] == 102 and snap["total"]["4xx"][-1] == 1 and snap["requests"] == 102
    # AND the series start when the stack did, not a window earlier
    assert snap["t"][0] >= int(clock.now) - 3 and snap["t"][-1] == int(clock.now) - 1


def test_emf_lines_of_the_log_feed_the_model_and_leave_the_console() -> None:
    # GIVEN the stack's log, tapped by the store, and the EMF lines a heavy container prints for two batches
    clock = Clock()
    s = store(clock)
    out = io.StringIO()
    log = LogStream(out)
    log.taps.append(s.ingest_line)
    container = ModelMetrics("minilm", "v1", emit=lambda line: log("sagemaker minilm", line))
    for rows, waiting, ms in ((8, 3, 4.0), (2, 0, 1.0)):
        container.add(emf.BATCH_SIZE, rows)
        container.add(emf.QUEUE_DEPTH, waiting)
        container.add(emf.INFERENCE_LATENCY, ms)
    container.add(emf.JOBS_SUCCEEDED, 5)
    clock.now += 0.2
    container.flush()
    log("gateway", "POST /v1/models/minilm/predict 200 3.1ms")
    log("api", '{"level": "INFO", "message": "a JSON log line, not a metric"}')
    clock.now += 1
    snap = s.snapshot(60)["models"]["minilm"]
    # THEN the metric documents reached the dashboard's series, and only the other lines the console
    assert snap["batch"]["mean"][-1] == 5 and snap["batch"]["max"][-1] == 8 and snap["batch"]["queue_depth"][-1] == 3
    assert snap["inference"]["p50"][-1] == 2.5 and snap["jobs"]["succeeded"][-1] == 5
    assert "_aws" not in out.getvalue() and "a JSON log line" in out.getvalue() and "3.1ms" in out.getvalue()
    assert s.ingest_line("{not json but \"_aws\"") is False


def test_queue_depths_are_gauges_held_until_the_next_sample() -> None:
    clock = Clock()
    s = store(clock)
    s.queue("jobs-iris", 7, 2)
    clock.now += 3
    s.queue("jobs-iris", 1, 0)
    clock.now += 1
    jobs = s.snapshot(60)["models"]["iris"]["jobs"]
    assert jobs["queued"][-4:] == [7, 7, 7, 1] and jobs["running"][-1] == 0
    assert jobs["dead_letters"][-1] is None  # never sampled


def test_memory_is_bounded_in_time_and_per_second() -> None:
    clock = Clock()
    s = store(clock)
    for _ in range(MAX_SAMPLES + 500):
        s.request("POST", "/v1/models/iris/predict", "/v1/models/iris/predict", 200, 1.0)
    series = s.models["iris"]
    assert len(series.buckets[int(clock.now)].samples["latency"]) == MAX_SAMPLES
    assert series.buckets[int(clock.now)].counts["requests"] == MAX_SAMPLES + 500  # counts stay exact
    clock.now += RETAIN_S + 5
    s.request("POST", "/v1/models/iris/predict", "/v1/models/iris/predict", 200, 1.0)
    assert list(series.buckets) == [int(clock.now)]


def asgi_get(app: Any, path: str, query: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []},
                    receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_dashboard_routes() -> None:
    app = DashboardApp(store(Clock()), "demo")
    status, headers, body = asgi_get(app, "/_local/dashboard")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<title>demo" in body and b"/_local/static/chart.umd.min.js" in body
    status, _, body = asgi_get(app, "/_local/metrics", b"window=30")
    assert status == 200 and set(json.loads(body)["models"]) == {"iris", "minilm"}
    assert asgi_get(app, "/_local/metrics", b"window=abc")[0] == 400
    status, headers, body = asgi_get(app, "/_local/static/chart.umd.min.js")
    assert status == 200 and body.startswith(b"/*!\n * Chart.js v4.") and "javascript" in headers["content-type"]
    assert asgi_get(app, "/_local/static/../page.py")[0] == 404
    assert asgi_get(app, "/_local/static/nothing.js")[0] == 404


def test_the_gateway_reports_each_answer_and_hands_local_paths_to_the_dashboard() -> None:
    # GIVEN a gateway with an observer and the dashboard mounted
    class Health:
        async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
            assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")  # API Gateway starts a trace
            return {"statusCode": 200, "headers": {}, "body": "{}"}, False

    manifest = parse_manifest({"models": [{"name": "m", "path": "x.onnx", "tier": "light"}]}, root=ROOT,
                              check_files=False)
    seen: list[tuple[str, str | None, str, int]] = []
    s = store(Clock())
    gateway = Gateway(manifest, [Route("GET", "/v1/health", "api", api_key_required=False)], Health(), {},
                      log=lambda _: None, observe=lambda m, r, p, status, ms: seen.append((m, r, p, status)),
                      local=DashboardApp(s, "demo"))
    # WHEN a route, an unknown path (with the stage) and the dashboard are asked for
    assert asgi_get(gateway, "/v1/health")[0] == 200
    status, _, body = asgi_get(gateway, "/prod/v1/nothing")
    assert status == 403 and json.loads(body)["instance"].startswith("urn:x-amzn-trace-id:1-")  # its trace
    assert asgi_get(gateway, "/_local/dashboard")[0] == 200
    # THEN the observer heard the two API answers (with their route and the path without the stage) only
    assert seen == [("GET", "/v1/health", "/v1/health", 200), ("GET", None, "/v1/nothing", 403)]


def test_a_cascade_has_its_requests_and_how_its_answers_were_made() -> None:
    clock = Clock()
    s = MetricsStore([("digits-light", "light"), ("digits", "cascade")], clock=clock)
    s.request("POST", "/v1/cascades/{name}/predict", "/v1/cascades/digits/predict", 200, 3.0)
    def emit(line: str) -> None:
        assert s.ingest_line(line)

    metrics = ModelMetrics("digits", emit=emit)
    metrics.add(emf.CACHE_HITS)
    metrics.add(emf.ESCALATED_ROWS, 7)
    metrics.add(emf.DEGRADED)
    metrics.flush()
    clock.now += 1
    digits = s.snapshot(60)["models"]["digits"]
    assert digits["tier"] == "cascade" and digits["requests"][-1] == 1
    assert (digits["answers"]["cache_hits"][-1], digits["answers"]["escalated"][-1],
            digits["answers"]["degraded"][-1], digits["answers"]["cache_misses"][-1]) == (1, 7, 1, 0)

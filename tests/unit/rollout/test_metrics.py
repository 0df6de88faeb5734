"""The per-version metric line and the version SageMaker passes back."""

from __future__ import annotations

import io
import json
import time

from inferstack.rollout import answered_version, version_attribute
from inferstack.rollout.metrics import VersionMetrics, emf_line


def test_emf_line_counts_a_5xx_as_an_error_by_model_and_version() -> None:
    line = json.loads(emf_line("inferstack/demo", "iris", "abc123", status=503, latency_ms=12.3456, now_ms=1))
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "inferstack/demo" and directive["Dimensions"] == [["Model", "Version"]]
    assert {m["Name"] for m in directive["Metrics"]} == {"Requests", "Errors", "Latency"}
    assert (line["Model"], line["Version"], line["Requests"], line["Errors"], line["Latency"]) == \
        ("iris", "abc123", 1, 1, 12.346)
    assert json.loads(emf_line("n", "iris", "v", status=422, latency_ms=1))["Errors"] == 0  # a client's mistake


def test_nothing_is_written_without_a_namespace() -> None:
    out = io.StringIO()
    VersionMetrics(namespace="", out=out).record("iris", "v1", status=200, started=time.perf_counter())
    assert out.getvalue() == ""
    VersionMetrics(namespace="ns", out=out).record("iris", "v1", status=200, started=time.perf_counter())
    assert json.loads(out.getvalue())["Version"] == "v1"


def test_version_from_custom_attributes() -> None:
    assert answered_version(version_attribute("abc")) == "abc"
    assert answered_version("trace=1; version=xyz") == "xyz"
    assert answered_version(None) is None and answered_version("version=") is None

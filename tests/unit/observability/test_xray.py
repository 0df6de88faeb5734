"""The X-Ray helpers: annotations on a subsegment where tracing is on, nothing at all where it is off."""

from __future__ import annotations

import sys

import pytest

from inferstack.observability import xray
from tests.xray import MemoryEmitter, xray_on

__all__ = ["xray_on"]


def test_a_traced_block_is_a_subsegment_annotated_with_model_version_and_job(xray_on: MemoryEmitter) -> None:
    # WHEN a block runs traced, and something inside it (here a thread would see the same) adds a job ID
    with xray.traced("## job", model="iris", version="3"):
        xray.annotate(job_id="abc123")
    # THEN one subsegment went to the daemon, in the invocation's trace, with the three annotations
    (sub,) = xray_on.subsegments("## job")
    assert sub["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert sub["annotations"] == {"model": "iris", "version": "3", "job_id": "abc123"}
    # AND outside any traced block annotate leaves Lambda's facade segment alone (it would raise)
    xray.annotate(model="iris")


def test_an_unsampled_trace_costs_no_subsegment(xray_on: MemoryEmitter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
                                           "Sampled=0")
    with xray.traced("## job", model="iris"):
        xray.annotate(job_id="abc123")
    assert xray_on.sent == []


@pytest.mark.parametrize("environment", [{}, {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},
                                         {"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}])
def test_off_lambda_or_disabled_tracing_is_a_no_op(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN no Lambda (inferstack dev, tests), or tracing switched off
    for key in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    xray.reset()
    try:
        # THEN there is no tracer, a traced block is the shared no-op, and nothing is logged
        assert xray.tracer() is None
        with xray.traced("## job", model="iris") as sub:
            xray.annotate(job_id="abc123")
        assert sub is None and not caplog.records
    finally:
        xray.reset()


def test_the_sdk_is_not_imported_where_tracing_is_off() -> None:
    # The light predict function's cold start: the X-Ray SDK (and the botocore clients it imports) only load where
    # tracing is on
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys\nfrom inferstack.observability import xray\n"
                          "with xray.traced('## predict'): xray.annotate(model='iris')\n"
                          "print(sorted(m for m in sys.modules\n"
                          "             if m.startswith(('aws_xray_sdk', 'wrapt', 'botocore.client'))))"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin",
                                                                          "PYTHONPATH": sys.path[0] or "."})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

"""The command-line client against a running `inferstack dev`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack

pytestmark = pytest.mark.e2e


def cli(stack_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "inferstack_infra.cli", *args, "--url", stack_url,
                           "--api-key", PRO_KEY],
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120, check=False)


def test_invoke_from_a_file_and_from_stdin(dev_stack: RunningStack, tmp_path: Path) -> None:
    body = tmp_path / "rows.json"
    body.write_text(json.dumps({"inputs": {"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}))
    out = cli(dev_stack.url, "invoke", "iris", "--input", str(body))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"]["label"] == [0, 2]
    out = cli(dev_stack.url, "invoke", "iris", "--input", "-", stdin="[[5.1, 3.5, 1.4, 0.2]]")
    assert out.returncode == 0 and json.loads(out.stdout)["outputs"]["label"] == [0]


def test_invoke_errors_are_clear(dev_stack: RunningStack, tmp_path: Path) -> None:
    out = cli(dev_stack.url, "invoke", "iris", "--input", "-", stdin="[[1, 2, 3]]")
    assert out.returncode == 1
    assert "error: 422 Inputs do not match the model's signature: inputs.features: dimension 1" in out.stderr
    out = cli(dev_stack.url, "invoke", "iris", "--input", str(tmp_path / "missing.json"))
    assert out.returncode == 1 and "cannot read --input" in out.stderr
    out = cli("http://127.0.0.1:9", "invoke", "iris", "--input", "-", stdin="[]")
    assert out.returncode == 1 and "cannot reach http://127.0.0.1:9" in out.stderr


def test_jobs_submit_get_and_wait(dev_stack: RunningStack) -> None:
    out = cli(dev_stack.url, "jobs", "submit", "iris", "--input", "-", "--metadata", '{"order": 3}',
              stdin='{"inputs": [[5.1, 3.5, 1.4, 0.2]]}')
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["job_id"]
    waited = cli(dev_stack.url, "jobs", "wait", job_id, "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    job = json.loads(waited.stdout)
    assert job["status"] == "succeeded" and job["result"]["label"] == [0] and job["metadata"] == {"order": 3}
    assert json.loads(cli(dev_stack.url, "jobs", "get", job_id).stdout)["job_id"] == job_id
    missing = cli(dev_stack.url, "jobs", "get", "no-such-job")
    assert missing.returncode == 1 and "404 Unknown job" in missing.stderr


def test_load_reports_percentiles_throttles_and_writes_a_plot(dev_stack: RunningStack, tmp_path: Path) -> None:
    from tests.e2e.conftest import FREE_KEY

    # GIVEN the "free" plan (5 requests/s, burst 10) WHEN an open loop sends 30 requests/s for 2 s
    plot = tmp_path / "load.png"
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "load", "--url", dev_stack.url,
                          "--api-key", FREE_KEY,
                          "--rate", "30", "--duration", "2", "--out", str(plot)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    # THEN the plan's throttle shows as 429s, the rest succeed, and the plot is written
    assert summary["requests"] >= 50 and summary["throttled_429"] > 0 and summary["ok"] >= 10
    assert summary["errors"] == 0
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert "429:" in out.stderr  # the progress line
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_closed_loop_with_jobs(dev_stack: RunningStack, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "load", "--url", dev_stack.url,
                          "--api-key", PRO_KEY,
                          "--concurrency", "4", "--duration", "2", "--jobs", "0.5", "--quiet",
                          "--out", str(tmp_path / "l.png")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["predict"] > 0 and summary["jobs"] > 0 and summary["errors"] == 0


def test_load_jobs_only_soaks_then_drains(dev_stack: RunningStack, tmp_path: Path) -> None:
    from tests.e2e.conftest import FREE_KEY

    # GIVEN the "free" plan (5 requests/s, burst 10) WHEN 25 jobs are submitted by 4 clients, then drained
    plot = tmp_path / "soak.png"
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "load", "--url", dev_stack.url,
                          "--api-key", FREE_KEY, "--jobs-only", "--count", "25", "--concurrency", "4", "--rows", "4",
                          "--quiet", "--out", str(plot)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    # THEN the throttle answered 429s, which were retried as told: every job accepted, and every one ended
    assert summary["throttled_429"] > 0 and summary["accepted"] == summary["terminal"] == summary["succeeded"] == 25
    assert summary["errors"] == {} and summary["jobs_per_s"] > 0
    assert summary["submit_p50_ms"] <= summary["submit_p95_ms"] <= summary["submit_p99_ms"]
    assert summary["result_p50_s"] <= summary["result_p99_s"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

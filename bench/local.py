"""Local throughput: predict requests per second through `inferstack dev` (gateway, proxy event, the
function's runtime process) at 16 concurrent clients, against the same model served by a plain uvicorn +
FastAPI app (bench/naive_app.py) on this machine. Both are measured with the same lean load generator.

Then, on the same stack, a soak of the jobs tier (`inferstack load --jobs-only`: SOAK_JOBS jobs of 4 rows from
SOAK_CLIENTS clients, then the drain): jobs per second end to end beside the light tier's predict throughput,
and the p99 of the last 200 submissions against the first 200 (flat as the table and queue grow: ≤ 1.5x)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import load
from inferstack_infra.local.aws import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 16
SOAK_CLIENTS = 32
KEY = "bench-key-0001"
BODY = b'{"inputs": {"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}'


def _wait(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _serve(cmd: list[str], health: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait(health, proc)
    return proc


def soak(url: str, jobs: int) -> dict[str, Any]:
    import asyncio

    from inferstack_infra.soak import JobsSoak

    result = asyncio.run(JobsSoak(url, KEY, "iris", {"features": [[5.1, 3.5, 1.4, 0.2]] * 4}).run(
        count=jobs, concurrency=SOAK_CLIENTS, drain_timeout_s=300, progress=False))
    summary = result.summary()
    print(f"jobs soak ({jobs} jobs, {SOAK_CLIENTS} clients): {summary}")
    if not summary["ok"]:
        raise RuntimeError(f"the jobs soak had errors: {summary['errors']}")
    return summary


def run(seconds: float = 8, soak_jobs: int = 2000) -> list[dict[str, Any]]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "inferstack.toml"
        manifest.write_text(f"""
name = "benchlocal"
[api]
throttle = {{ rate = 10000, burst = 5000 }}
[[api.plans]]
name = "bench"
throttle = {{ rate = 10000, burst = 5000 }}
[[models]]
name = "iris"
path = "{ROOT / 'models' / 'iris.onnx'}"
tier = "light"
""")
        port = free_port()
        dev = _serve([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(manifest),
                      "--port", str(port),
                      "--api-key", f"{KEY}:bench"], f"http://127.0.0.1:{port}/v1/health", {})
        try:
            url = f"http://127.0.0.1:{port}"
            load(url, "/v1/models/iris/predict", BODY, clients=CLIENTS, seconds=1, headers={"x-api-key": KEY})
            results["dev"], _, statuses = load(url, "/v1/models/iris/predict", BODY, clients=CLIENTS,
                                               seconds=seconds, headers={"x-api-key": KEY})
            if set(statuses) != {200}:
                raise RuntimeError(f"inferstack dev answered {statuses}")
            jobs = soak(url, soak_jobs)
        finally:
            dev.terminate()  # SIGTERM: the stack stops every process it started
            dev.wait(30)
    port = free_port()
    plain = _serve([sys.executable, "-m", "uvicorn", "bench.naive_app:app", "--port", str(port), "--log-level",
                    "warning", "--no-access-log"], f"http://127.0.0.1:{port}/docs",
                   {"NAIVE_MODEL_PATH": str(ROOT / "models" / "iris.onnx")})
    try:
        url = f"http://127.0.0.1:{port}"
        load(url, "/v1/models/iris/predict", BODY, clients=CLIENTS, seconds=1)
        results["uvicorn"], _, statuses = load(url, "/v1/models/iris/predict", BODY, clients=CLIENTS,
                                               seconds=seconds)
        if set(statuses) != {200}:
            raise RuntimeError(f"the plain app answered {statuses}")
    finally:
        plain.terminate()
        plain.wait(30)
    first, last = jobs["submit_p99_first_200_ms"], jobs["submit_p99_last_200_ms"]
    return [{"figure": f"local predict req/s, {CLIENTS} clients", "value": results["dev"],
             "baselines": {"uvicorn app": results["uvicorn"]}, "targets": {}, "better": "higher"},
            {"figure": f"local jobs/s end to end, {soak_jobs} jobs", "value": jobs["jobs_per_s"],
             "baselines": {"predict req/s": results["dev"], "target 50/s": 50.0}, "targets": {"target 50/s": 1.0},
             "better": "higher"},
            {"figure": "jobs submit p99, last 200 (ms)", "value": last,
             "baselines": {"first 200": first}, "targets": {"first 200": 1.5}, "better": "lower"},
            {"figure": "jobs time to result p99 (s)", "value": jobs["result_p99_s"], "baselines": {},
             "targets": {}}]

"""Rollouts rehearsed by `inferstack dev --candidate`: a good candidate completes and then answers everything
(predict and jobs); one that fails on a share of its inputs and one that is at least 10x slower are rolled back
by the manifest's alarms, and the clients saw no more errors than the candidate's share of the traffic.

One stack rehearses the three at once, as a deployment would roll three models out together: three models on the
same iris file, each with its own candidate, each called by its own clients from the start.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e

# p99 over a handful of answers is their slowest, and this shared machine stalls now and then (680 ms seen on a 3 ms
# call): the good candidate's latency alarm sits far above such stalls, the slow one's far below its 1 s calls
ROLLOUT = ('{{ strategy = "linear", percent = 20, interval_min = 1, min_requests = 5, '
           'alarms = [{{ metric = "error_rate", threshold = 0.05 }}, {{ metric = "p99_ms", threshold = {p99} }}] }}')
P99_MS = {"iris-good": 2500, "iris-bad": 400, "iris-slow": 400}
TIME_SCALE = 12  # a manifest minute lasts 5 s: 20 % more every 5 s, alarms over the last 5 s
SLOW_S = 1.0
#: a share of iris rows has a sepal longer than this; the failing candidate fails on those
FAILS_ABOVE = 6.0

FAILING_HANDLER = f"""
import numpy as np

def preprocess(body):
    x = np.asarray(body["features"] if isinstance(body, dict) else body, dtype=np.float32)
    if (x[:, 0] > {FAILS_ABOVE}).any():
        raise RuntimeError("this version fails on long sepals")
    return {{"features": x}}
"""
SLOW_HANDLER = f"""
import time
import numpy as np

def preprocess(body):
    time.sleep({SLOW_S})
    return {{"features": np.asarray(body["features"] if isinstance(body, dict) else body, dtype=np.float32)}}
"""


def retrained(iris: Path, out: Path, note: str) -> Path:
    """The same graph with other metadata: another file, another version, the same answers."""
    model = onnx.load(str(iris))
    model.doc_string = note
    onnx.save(model, str(out))
    return out


def handler(directory: Path, source: str) -> Path:
    directory.mkdir()
    (directory / "handler.py").write_text(source)
    return directory / "handler.py"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[RunningStack]:
    d = tmp_path_factory.mktemp("rollout")
    manifest = d / "inferstack.toml"
    manifest.write_text("".join(f"""
[[models]]
name = "{name}"
path = "{iris_model}"
tier = "light"
rollout = {ROLLOUT.format(p99=P99_MS[name])}
""" for name in ("iris-good", "iris-bad", "iris-slow"))
        + '[api]\nthrottle = { rate = 5000, burst = 5000 }\n'
        + '[[api.plans]]\nname = "pro"\nthrottle = { rate = 5000, burst = 5000 }\n')
    good = retrained(iris_model, d / "iris-v2.onnx", "v2: retrained")
    stack = start_dev(d / "dev.log", "--api-key", f"{PRO_KEY}:pro", "--time-scale", str(TIME_SCALE),
                      "--candidate", f"iris-good={good}",
                      "--candidate", f"iris-bad={good},handler={handler(d / 'bad', FAILING_HANDLER)}",
                      "--candidate", f"iris-slow={good},handler={handler(d / 'slow', SLOW_HANDLER)}",
                      manifest=manifest)
    yield stack
    stop_dev(stack)


@dataclass
class Answer:
    at: float
    status: int
    version: str | None
    latency_s: float


@dataclass
class Traffic:
    """Clients calling one model until its rollout is decided, then a while longer."""

    stack: RunningStack
    model: str
    answers: list[Answer] = field(default_factory=list)
    decided: threading.Event = field(default_factory=threading.Event)
    decided_at: float = 0.0

    def rows(self, rng: random.Random) -> list[list[float]]:
        return [[rng.uniform(4.5, 7.5), rng.uniform(2.0, 4.0), rng.uniform(1.0, 6.5), rng.uniform(0.1, 2.5)]]

    def call(self, seed: int, after_decision: int) -> None:
        rng = random.Random(seed)
        left = after_decision
        with httpx.Client(base_url=self.stack.url, headers={"x-api-key": PRO_KEY}, timeout=30) as client:
            while left > 0:
                started = time.monotonic()
                r = client.post(f"/v1/models/{self.model}/predict", json={"inputs": {"features": self.rows(rng)}})
                self.answers.append(Answer(started, r.status_code, r.headers.get("x-model-version"),
                                           time.monotonic() - started))
                if self.decided.is_set():
                    left -= 1

    def status(self) -> dict[str, Any]:
        body = httpx.get(f"{self.stack.url}/_inferstack/rollouts", timeout=10).json()
        (found,) = [r for r in body["rollouts"] if r["model"] == self.model]
        return found  # type: ignore[no-any-return]

    def run(self, clients: int = 2, after_decision: int = 40) -> dict[str, Any]:
        threads = [threading.Thread(target=self.call, args=(i, after_decision)) for i in range(clients)]
        for t in threads:
            t.start()
        try:
            status: dict[str, Any] = eventually(lambda: (s := self.status())["phase"] != "shifting" and s,
                                                timeout_s=120)
        finally:
            self.decided.set()
            self.decided_at = time.monotonic()
            for t in threads:
                t.join()
        return status

    def during(self) -> list[Answer]:
        return [a for a in self.answers if a.at < self.decided_at]

    def after(self) -> list[Answer]:
        return [a for a in self.answers if a.at > self.decided_at]  # started once the decision was known


def figures(traffic: Traffic, status: dict[str, Any]) -> dict[str, Any]:
    candidate = status["versions"]["candidate"]["version"]
    window = traffic.during()
    saw = sum(a.version == candidate for a in window)
    errors = sum(a.status >= 500 for a in window)
    out = {"model": traffic.model, "decision": status["decision"], "requests_in_window": len(window),
           "answered_by_candidate": saw, "share_candidate": round(saw / len(window), 3),
           "client_errors": errors, "share_errors": round(errors / len(window), 3)}
    print("ROLLOUT-FIGURES " + json.dumps(out))
    return out


@pytest.fixture(scope="module")
def outcomes(rehearsal: RunningStack) -> dict[str, tuple[Traffic, dict[str, Any]]]:
    """Every model's traffic and final rollout status, the three rollouts driven at once."""
    traffic = {m: Traffic(rehearsal, m) for m in ("iris-good", "iris-bad", "iris-slow")}
    results: dict[str, tuple[Traffic, dict[str, Any]]] = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t.model, (t, t.run())))
               for t in traffic.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_good_candidate_completes_and_then_serves_predict_and_jobs(
        rehearsal: RunningStack, outcomes: dict[str, tuple[Traffic, dict[str, Any]]]) -> None:
    traffic, status = outcomes["iris-good"]
    figures(traffic, status)
    candidate = status["versions"]["candidate"]["version"]
    assert status["phase"] == "complete" and status["split"] == {"current": 0, "candidate": 100}
    assert [s["percent"] for s in status["schedule"]] == [20, 40, 60, 80, 100]
    # no client saw an error, and the candidate answered a rising share along the way
    assert all(a.status == 200 for a in traffic.answers)
    assert 0 < status["versions"]["candidate"]["requests"] < len(traffic.during())
    # AND after completion it answers every predict, and the job worker follows the same split
    assert {a.version for a in traffic.after()} == {candidate}
    with rehearsal.client() as client:
        job = client.post("/v1/jobs", json={"model": "iris-good", "inputs": [[5.1, 3.5, 1.4, 0.2]]}).json()
        done = eventually(lambda: (j := client.get(f"/v1/jobs/{job['job_id']}").json())["status"] == "succeeded"
                          and j)
    assert done["model_version"] == candidate


def test_a_candidate_failing_on_some_inputs_is_rolled_back(
        outcomes: dict[str, tuple[Traffic, dict[str, Any]]]) -> None:
    traffic, status = outcomes["iris-bad"]
    found = figures(traffic, status)
    candidate, current = status["versions"]["candidate"]["version"], status["versions"]["current"]["version"]
    assert status["phase"] == "rolled-back" and status["split"] == {"current": 100, "candidate": 0}
    assert status["decision"]["reason"].startswith("alarm: error_rate")
    # every client-visible error came from the candidate, and no more than its traffic share
    window = traffic.during()
    assert all(a.version == candidate for a in window if a.status >= 500)
    share = max(s["percent"] for s in status["schedule"] if s["at_s"] <= status["decision"]["after_s"]) / 100
    tolerance = 3 * math.sqrt(share * (1 - share) / len(window))  # three standard deviations of a binomial share
    assert found["share_errors"] <= found["share_candidate"] <= share + tolerance
    # AND once rolled back, the current version answers everything, without errors
    after = traffic.after()
    assert after and all(a.status == 200 and a.version == current for a in after)


def test_a_candidate_ten_times_slower_is_rolled_back(outcomes: dict[str, tuple[Traffic, dict[str, Any]]]) -> None:
    traffic, status = outcomes["iris-slow"]
    found = figures(traffic, status)
    candidate, current = status["versions"]["candidate"]["version"], status["versions"]["current"]["version"]
    assert status["phase"] == "rolled-back" and status["decision"]["reason"].startswith("alarm: p99_ms")
    assert found["client_errors"] == 0  # slow, not failing
    # how much slower, as measured (a figure for the notes, not an assertion: this machine's load varies)
    fast = sorted(a.latency_s for a in traffic.during() if a.version == current)
    slow = sorted(a.latency_s for a in traffic.during() if a.version == candidate)
    print("ROLLOUT-FIGURES " + json.dumps({"slow_median_s": slow[len(slow) // 2],
                                           "current_median_s": fast[len(fast) // 2]}))
    assert all(a.version == current for a in traffic.after())


def test_rollout_status_prints_the_split_versions_and_decisions(
        rehearsal: RunningStack, outcomes: dict[str, tuple[Traffic, dict[str, Any]]]) -> None:
    out = subprocess.run([sys.executable, "-m", "inferstack_infra.cli", "rollout", "status", "--url", rehearsal.url],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    for model, (_, status) in outcomes.items():
        candidate = status["versions"]["candidate"]["version"]
        assert f"{model}: linear {status['phase']}" in out.stdout
        assert candidate in out.stdout
    assert "decision: rolled-back after" in out.stdout and "alarm: error_rate" in out.stdout

"""The local twin's rollout: schedule, alarms on the candidate's last period, decisions (an injected clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import parse_manifest
from inferstack_infra.local.rollout import CandidateError, LocalRollout, Sample, breaches, p99, parse_candidate
from tests.conftest import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rollout(clock: Clock, rand: float = 0.5, **config: Any) -> LocalRollout:
    manifest = parse_manifest({"models": [{"name": "iris", "path": "models/iris.onnx", "tier": "light",
                                           "rollout": config}]}, root=ROOT, check_files=False)
    return LocalRollout(manifest.model("iris"), current="old", candidate="new", time_scale=60, clock=clock,
                        rand=lambda: rand, log=lambda line: None)


def test_linear_rollout_shifts_on_schedule_then_completes() -> None:
    # GIVEN linear 25 % a minute, a minute lasting a second
    clock = Clock()
    r = rollout(clock, strategy="linear", percent=25, interval_min=1)
    seen = []
    for _ in range(4):
        r.tick()
        seen.append(r.status()["split"]["candidate"])
        clock.now += 1.0
    # THEN 25, 50, 75 then 100 %: complete
    assert seen == [25, 50, 75, 100]
    status = r.status()
    assert status["phase"] == "complete" and status["decision"]["after_s"] == 3.0


def test_errors_on_the_candidate_roll_it_back_once_min_requests_are_in() -> None:
    clock = Clock()
    r = rollout(clock, min_requests=10, alarms=[{"metric": "error_rate", "threshold": 0.05}])
    for i in range(9):
        r.record("candidate", latency_ms=1, error=i % 2 == 0)
    assert r.status()["phase"] == "shifting"  # 9 answers: not judged yet
    r.record("candidate", latency_ms=1, error=True)
    status = r.status()
    assert status["phase"] == "rolled-back" and status["split"] == {"current": 100, "candidate": 0}
    assert "error_rate 0.600 > 0.05" in status["decision"]["reason"]
    assert r.choose() == "current"  # no traffic to the candidate after the rollback


def test_only_the_last_alarm_period_counts_and_the_current_version_never_trips_it() -> None:
    clock = Clock()
    r = rollout(clock, interval_min=10, min_requests=5, alarms=[{"metric": "p99_ms", "threshold": 50}])
    for _ in range(20):
        r.record("current", latency_ms=500, error=True)  # the current version's troubles are not the candidate's
    for _ in range(5):
        r.record("candidate", latency_ms=400, error=False)
    # those five were judged: rolled back
    assert r.status()["phase"] == "rolled-back"
    clock2 = Clock()
    r2 = rollout(clock2, interval_min=10, min_requests=5, alarms=[{"metric": "p99_ms", "threshold": 50}])
    for _ in range(4):
        r2.record("candidate", latency_ms=400, error=False)
    clock2.now += 1.5  # past the (compressed) 1 s alarm period: the slow answers age out
    for _ in range(5):
        r2.record("candidate", latency_ms=5, error=False)
    assert r2.status()["phase"] == "shifting"


def test_split_follows_the_weight() -> None:
    clock = Clock()
    assert rollout(clock, rand=0.05, percent=10).choose() == "candidate"
    assert rollout(clock, rand=0.15, percent=10).choose() == "current"


def test_p99_and_breaches() -> None:
    assert p99([float(i) for i in range(1, 101)]) == 99.0 and p99([3.0]) == 3.0 and p99([]) is None
    samples = [Sample(0, 10, False)] * 3
    assert breaches(samples, {"p99_ms": 5}, min_requests=4) == []
    assert breaches(samples, {"p99_ms": 5}, min_requests=3) == ["p99_ms 10.0 > 5 (over 3 answers)"]


@pytest.mark.parametrize("value", ["iris", "=x.onnx", "iris=", "iris=a.onnx,tokenizer=t.py"])
def test_bad_candidate_flags(value: str) -> None:
    with pytest.raises(CandidateError, match="--candidate"):
        parse_candidate(value)


def test_candidate_flag() -> None:
    c = parse_candidate("iris=models/v2.onnx,handler=models/v2/handler.py")
    assert (c.model, c.path, c.handler) == ("iris", Path("models/v2.onnx"), Path("models/v2/handler.py"))


def test_what_counts_against_a_fleet() -> None:
    import json

    from inferstack_infra.local.rollout import endpoint_failed

    def model_error(original: int) -> bytes:
        return json.dumps({"message": "x", "OriginalStatusCode": original}).encode()

    assert not endpoint_failed(200, b"{}")
    assert not endpoint_failed(424, model_error(422))  # the caller's mistake
    assert endpoint_failed(424, model_error(500)) and endpoint_failed(424, model_error(0))  # failed, timed out
    assert endpoint_failed(503, b"{}") and not endpoint_failed(400, b"{}")

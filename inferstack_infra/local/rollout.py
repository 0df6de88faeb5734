"""The local twin of a rollout: a candidate model served next to the current version, traffic shifted on the
manifest's schedule, the manifest's alarms evaluated on the candidate's own metrics, rollback or completion.

A heavy model's candidate is a second container beside the current one on its local endpoint, which splits
the invocations as SageMaker's blue/green deployment does between its fleets (`LocalSageMaker.invoke`); the
answers it measures (the container's 5xx or no answer, and the invocation's duration) feed the same alarms.

On AWS, CodeDeploy shifts the `live` alias of the model's predict function (and of its job worker) from the
current version to the new one, and rolls back when a CloudWatch alarm on the new version's error rate or p99
latency fires (`inferstack_infra.constructs.rollout`). Here, `inferstack dev --candidate iris=models/iris-v2.onnx`
starts the candidate's execution environments beside the current ones (`predict-iris:candidate`,
`worker-iris:candidate`), and `RolloutInvoker` (the gateway's invoker and the SQS pollers') sends each invocation
to one or the other by the current weight, as Lambda's weighted alias does. Each predict answer is measured
as Lambda's metrics are (status, and duration once an environment took the invocation, by the version that
answered); the alarms
look at the candidate's answers of the last alarm period (60 s, compressed with the schedule) and judge once it
holds `min_requests`. `--time-scale 60` runs a 5-minute canary in 5 seconds.

`GET /_inferstack/rollouts` (local only, like LocalStack's `/_localstack/...`) reports every rollout: the split,
each version's requests, error rate and p99, and the decision; `inferstack rollout status` prints it.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from inferstack.manifest import Manifest, Model
from inferstack.rollout.config import ALARM_PERIOD_S, AlarmMetric
from inferstack.topology import FunctionSpec, predict_function_key, worker_function_key

CANDIDATE = "candidate"
STATUS_PATH = "/_inferstack/rollouts"
#: Answers kept per version for the alarms and the status (a bound on memory, whatever the traffic).
MAX_SAMPLES = 50_000

Phase = Literal["shifting", "complete", "rolled-back"]
Role = Literal["current", "candidate"]


class CandidateError(ValueError):
    """A `--candidate` that cannot be rehearsed (its message says why and what to do)."""


@dataclass(frozen=True)
class Candidate:
    model: str
    path: Path
    handler: Path | None = None


def parse_candidate(value: str) -> Candidate:
    """`MODEL=FILE.onnx` or `MODEL=FILE.onnx,handler=HANDLER.py`."""
    model, sep, rest = value.partition("=")
    parts = rest.split(",")
    if not sep or not model or not parts[0]:
        raise CandidateError(f"--candidate {value!r}: expected MODEL=FILE.onnx[,handler=FILE.py]")
    handler = None
    for extra in parts[1:]:
        key, _, path = extra.partition("=")
        if key != "handler" or not path:
            raise CandidateError(f"--candidate {value!r}: unknown option {extra!r}; the only one is handler=FILE.py")
        handler = Path(path)
    return Candidate(model, Path(parts[0]), handler)


def candidate_manifest(manifest: Manifest, candidates: list[Candidate]) -> Manifest:
    """The manifest with each candidate's file (and handler) in place of its model's: what a deployment of the
    new version would hold."""
    by_name = {c.model: c for c in candidates}
    models: list[Model] = []
    for m in manifest.models:
        c = by_name.pop(m.name, None)
        if c is None:
            models.append(m)
            continue
        if m.variants or (m.instances.scales_to_zero and m.tier == "heavy"):
            raise CandidateError(f"--candidate {c.model}: the local twin rehearses rollouts of models with one path "
                                 f"on a light function or an always-on endpoint; {m.name} is "
                                 f"{'an A/B test' if m.variants else 'scaled to zero (an inference component)'}")
        path, handler = manifest.resolve(c.path), manifest.resolve(c.handler) if c.handler else None
        if not path.is_file():
            raise CandidateError(f"--candidate {c.model}: file {path} does not exist")
        if handler is not None and not handler.is_file():
            raise CandidateError(f"--candidate {c.model}: handler {handler} does not exist")
        models.append(m.model_copy(update={"path": path.resolve(), "version": None,
                                           "handler": handler.resolve() if handler else m.handler}))
    if by_name:
        raise CandidateError(f"--candidate {', '.join(by_name)}: no such model in the manifest (models: "
                             f"{', '.join(m.name for m in manifest.models)})")
    return manifest.model_copy(update={"models": models})


def endpoint_failed(status: int, body: bytes) -> bool:
    """What SageMaker counts against a fleet: its container's 5xx or no answer (a `ModelError` carries the
    container's status; 0 when it timed out), or the endpoint unavailable; a 4xx is the caller's."""
    if status == 424:
        try:
            original = int(json.loads(body).get("OriginalStatusCode") or 0)
        except (ValueError, AttributeError):
            return True
        return not 400 <= original < 500
    return status >= 500


def candidate_spec(spec: FunctionSpec) -> FunctionSpec:
    """The candidate's execution environments: the same function, another version (`name:qualifier`)."""
    return replace(spec, key=f"{spec.key}:{CANDIDATE}")


@dataclass
class Sample:
    at: float
    latency_ms: float
    error: bool


@dataclass
class VersionStats:
    version: str
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    requests: int = 0
    errors: int = 0

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.requests += 1
        self.errors += sample.error

    def window(self, since: float) -> list[Sample]:
        return [s for s in self.samples if s.at >= since]

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.errors / self.requests, 4) if self.requests else None,
                "p99_ms": p99([s.latency_ms for s in self.samples])}


def p99(values: list[float]) -> float | None:
    """Nearest-rank 99th percentile (CloudWatch's percentile statistic on few datapoints)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, -(-99 * len(ordered) // 100) - 1)], 3)


def breaches(samples: list[Sample], thresholds: dict[AlarmMetric, float], min_requests: int) -> list[str]:
    """The alarms the samples set off, each with its reason; none until there are `min_requests` of them."""
    if len(samples) < min_requests:
        return []
    out = []
    errors = sum(s.error for s in samples)
    rate = errors / len(samples)
    if "error_rate" in thresholds and rate > thresholds["error_rate"]:
        out.append(f"error_rate {rate:.3f} > {thresholds['error_rate']:g} ({errors} of {len(samples)} answers)")
    latency = p99([s.latency_ms for s in samples])
    if "p99_ms" in thresholds and latency is not None and latency > thresholds["p99_ms"]:
        out.append(f"p99_ms {latency:.1f} > {thresholds['p99_ms']:g} (over {len(samples)} answers)")
    return out


class LocalRollout:
    """One model's rollout from `current` to `candidate` versions. `time_scale`: manifest minutes per real minute
    (60: a minute of the schedule lasts a second). `clock` and `rand` are injectable for tests."""

    def __init__(self, model: Model, *, current: str, candidate: str, time_scale: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random,
                 log: Callable[[str], None] = print) -> None:
        self.model, self.time_scale, self.clock, self.rand, self.log = model, time_scale, clock, rand, log
        self.rollout = model.rollout
        self.thresholds = model.rollout.thresholds(latency_budget_ms=model.latency_budget_ms,
                                                   timeout_s=model.timeout_s)
        self.stats: dict[Role, VersionStats] = {"current": VersionStats(current),
                                                "candidate": VersionStats(candidate)}
        self.steps = [(minute * 60 / time_scale, percent) for minute, percent in self.rollout.schedule()]
        self.period_s = ALARM_PERIOD_S / time_scale
        self.lock = threading.Lock()
        self.started = clock()
        self.phase: Phase = "shifting"
        self.percent = self.steps[0][1]
        self.decided_at: float | None = None
        self.reason = ""
        self.first_bad_at: float | None = None
        self.log(f"{model.name}: {self.rollout.strategy} rollout of {candidate} over {current} begins at "
                 f"{self.percent} % ({self._plan()})")

    def _plan(self) -> str:
        return ", ".join(f"{p} % at {t:g}s" for t, p in self.steps) + \
            f"; alarms {', '.join(f'{k} > {v:g}' for k, v in self.thresholds.items())}"

    def choose(self) -> Role:
        """Which version answers the next invocation (Lambda's weighted alias)."""
        self.tick()
        return "candidate" if self.rand() * 100 < self.percent else "current"

    def record(self, role: Role, *, latency_ms: float, error: bool) -> None:
        now = self.clock()
        with self.lock:
            self.stats[role].add(Sample(now, latency_ms, error))
        if role == "candidate":
            self.tick()

    def tick(self) -> None:
        """Advance the schedule and evaluate the alarms on the candidate's last alarm period."""
        with self.lock:
            if self.phase != "shifting":
                return
            now = self.clock()
            window = self.stats["candidate"].window(now - self.period_s)
            alarms = breaches(window, self.thresholds, self.rollout.min_requests)
            if alarms:
                self._decide(now, "rolled-back", 0, "alarm: " + "; ".join(alarms))
                return
            elapsed = now - self.started
            percent = max(p for t, p in self.steps if t <= elapsed)
            if percent != self.percent:
                self.percent = percent
                self.log(f"{self.model.name}: candidate at {percent} % after {elapsed:.1f}s")
            if percent == 100:
                self._decide(now, "complete", 100, "every step passed without an alarm")

    def _decide(self, now: float, phase: Phase, percent: int, reason: str) -> None:
        self.phase, self.percent, self.decided_at, self.reason = phase, percent, now, reason
        self.log(f"{self.model.name}: rollout {phase} after {now - self.started:.2f}s: {reason}")

    def status(self) -> dict[str, Any]:
        self.tick()
        with self.lock:
            return {
                "model": self.model.name, "strategy": self.rollout.strategy, "phase": self.phase,
                "split": {"current": 100 - self.percent, "candidate": self.percent},
                "versions": {role: s.summary() for role, s in self.stats.items()},
                "decision": None if self.decided_at is None else {
                    "outcome": self.phase, "reason": self.reason,
                    "after_s": round(self.decided_at - self.started, 3)},
                "schedule": [{"at_s": t, "percent": p} for t, p in self.steps],
                "thresholds": self.thresholds, "min_requests": self.rollout.min_requests,
                "alarm_period_s": self.period_s, "time_scale": self.time_scale,
                "elapsed_s": round(self.clock() - self.started, 3),
            }


class FunctionsInvoker(Protocol):
    async def invoke_timed(self, function: str, event: dict[str, Any], timeout_s: float
                           ) -> tuple[Any, bool, float]: ...

    def invoke_sync(self, function: str, event: dict[str, Any], timeout_s: float | None = None
                    ) -> tuple[Any, bool]: ...


def _failed(result: Any, function_error: bool) -> bool:
    """What Lambda and the version metrics count as an error: a function error, or a 5xx answer."""
    return function_error or not isinstance(result, dict) or int(result.get("statusCode") or 500) >= 500


class RolloutInvoker:
    """The weighted `live` alias: invocations of a rolling model's predict and worker functions go to the
    current or the candidate environments by the rollout's weight; predict answers feed its alarms."""

    def __init__(self, functions: FunctionsInvoker, rollouts: dict[str, LocalRollout], *,
                 routed: set[str] | None = None) -> None:
        """`rollouts`: every model's (for the status); `routed`: the light models among them, whose functions'
        invocations this splits (a heavy model's endpoint splits its own)."""
        self.functions = functions
        self.rollouts = rollouts  # by model
        self.by_function: dict[str, tuple[LocalRollout, bool]] = {}
        for model, rollout in rollouts.items():
            if routed is not None and model not in routed:
                continue
            self.by_function[predict_function_key(model)] = (rollout, True)
            self.by_function[worker_function_key(model)] = (rollout, False)

    def _target(self, function: str) -> tuple[str, LocalRollout | None, Role, bool]:
        found = self.by_function.get(function)
        if found is None:
            return function, None, "current", False
        rollout, measured = found
        role = rollout.choose()
        return (candidate_spec_key(function) if role == "candidate" else function), rollout, role, measured

    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
        target, rollout, role, measured = self._target(function)
        started = time.perf_counter()
        try:
            result, function_error, duration_ms = await self.functions.invoke_timed(target, event, timeout_s)
        except Exception:
            if rollout is not None and measured:  # a timeout or a dead environment: an error, as long as it took
                rollout.record(role, latency_ms=(time.perf_counter() - started) * 1000, error=True)
            raise
        if rollout is not None and measured:
            rollout.record(role, latency_ms=duration_ms, error=_failed(result, function_error))
        return result, function_error

    def invoke_sync(self, function: str, event: dict[str, Any], timeout_s: float | None = None) -> tuple[Any, bool]:
        target, _, _, _ = self._target(function)
        return self.functions.invoke_sync(target, event, timeout_s)

    def status(self) -> list[dict[str, Any]]:
        return [r.status() for r in self.rollouts.values()]


def candidate_spec_key(function: str) -> str:
    return f"{function}:{CANDIDATE}"


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_status_route(app: App, status: Callable[[], list[dict[str, Any]]]) -> App:
    """The gateway, plus `GET /_inferstack/rollouts` (the local stack's own, not the API's)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATUS_PATH:
            body = json.dumps({"rollouts": await asyncio.to_thread(status)}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return serve


__all__ = ["Candidate", "CandidateError", "LocalRollout", "RolloutInvoker", "breaches",
           "candidate_manifest", "candidate_spec", "parse_candidate", "with_status_route"]

"""What an estimate is computed from: each model's traffic, and how long one request takes it (measured).

Traffic is given per model or for all: `--rps 5` sets every model's rate, `--rps iris=50` one model's, and the
same for the other settings. A month is AWS's 730 hours; a model is active `hours_per_day` of each day (one
stretch), idle the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


@dataclass(frozen=True)
class Traffic:
    """One model's traffic: `rps` requests a second while active, `hours_per_day` active hours, `payload_kb` the
    size of a request body and of its answer, `jobs_share` the share of requests sent as jobs (0..1)."""

    rps: float = 1.0
    hours_per_day: float = 24.0
    payload_kb: float = 1.0
    jobs_share: float = 0.0

    def __post_init__(self) -> None:
        problems = [f"{name} {value:g} must be {rule}" for name, value, ok, rule in (
            ("rps", self.rps, self.rps >= 0, "at least 0"),
            ("hours_per_day", self.hours_per_day, 0 < self.hours_per_day <= 24, "above 0 and at most 24"),
            ("payload_kb", self.payload_kb, self.payload_kb > 0, "above 0"),
            ("jobs_share", self.jobs_share, 0 <= self.jobs_share <= 1, "between 0 and 1"),
        ) if not ok]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def active_seconds(self) -> float:
        """Seconds a month the model is active."""
        return self.hours_per_day * 3600 * DAYS_PER_MONTH

    @property
    def requests(self) -> float:
        """Requests a month (predict calls and job submissions together)."""
        return self.rps * self.active_seconds

    @property
    def predict_requests(self) -> float:
        return self.requests * (1 - self.jobs_share)

    @property
    def jobs(self) -> float:
        return self.requests * self.jobs_share

    @property
    def idle_stretch(self) -> bool:
        """Does the model sit idle part of each day (so its first request of the day meets a cold start)?"""
        return self.hours_per_day < 24

    def with_rps(self, rps: float) -> Traffic:
        return replace(self, rps=rps)


@dataclass(frozen=True)
class TrafficProfile:
    default: Traffic = Traffic()
    per_model: dict[str, Traffic] = field(default_factory=dict)

    def of(self, model: str) -> Traffic:
        return self.per_model.get(model, self.default)


@dataclass(frozen=True)
class Measured:
    """How long a model takes, measured on this machine with one onnxruntime thread (one vCPU's worth).

    `warm_s`: one request through the model's whole predict path (validation or handler, inference, answer);
    `init_s`: a fresh process importing the run-time library, loading the model and warming it up (what a
    Lambda cold start's init phase runs); `source` says where the figures come from."""

    warm_s: float
    init_s: float
    source: str


T = TypeVar("T")


def per_model_values(values: Sequence[str] | None, cast: Callable[[str], T], models: Sequence[str],
                     option: str) -> tuple[T | None, dict[str, T]]:
    """`VALUE` (every model) and `MODEL=VALUE` (one model) arguments: the default and the per-model values."""
    default: T | None = None
    per: dict[str, T] = {}
    for value in values or []:
        name, sep, raw = value.rpartition("=")
        try:
            parsed = cast(raw)
        except ValueError:
            raise ValueError(f"{option} {value!r}: {raw!r} is not a number") from None
        if not sep:
            default = parsed
        elif name in models:
            per[name] = parsed
        else:
            raise ValueError(f"{option} {value!r}: no model {name!r} in the manifest (it has {', '.join(models)})")
    return default, per


def build_profile(models: Sequence[str], *, rps: Sequence[str] | None = None, hours: Sequence[str] | None = None,
                  payload_kb: Sequence[str] | None = None, jobs: Sequence[str] | None = None) -> TrafficProfile:
    """A traffic profile from the command line's `--rps`, `--hours`, `--payload-kb` and `--jobs` values."""
    parsed = {option: per_model_values(values, float, models, f"--{option}") for option, values in
              (("rps", rps), ("hours", hours), ("payload-kb", payload_kb), ("jobs", jobs))}
    base = Traffic()
    fields = {"rps": "rps", "hours": "hours_per_day", "payload-kb": "payload_kb", "jobs": "jobs_share"}
    try:
        default = replace(base, **{fields[o]: d for o, (d, _) in parsed.items() if d is not None})
        per_model = {m: replace(default, **{fields[o]: per[m] for o, (_, per) in parsed.items() if m in per})
                     for m in models if any(m in per for _, per in parsed.values())}
    except ValueError as exc:
        raise ValueError(f"traffic: {exc}") from None
    return TrafficProfile(default, per_model)

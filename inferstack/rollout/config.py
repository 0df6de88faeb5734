"""`[[models]] rollout = {...}` and `variants = [...]`.

```toml
rollout = { strategy = "canary", percent = 10, interval_min = 5,
            alarms = [{ metric = "error_rate", threshold = 0.01 }, { metric = "p99_ms", threshold = 250 }] }
variants = [{ name = "control", path = "models/iris.onnx", weight = 90 },
            { name = "tuned", path = "models/iris-tuned.onnx", weight = 10 }]
```

- `strategy = "canary"`: `percent` of the traffic goes to the new version for `interval_min` minutes, then all of
  it. `"linear"`: `percent` more every `interval_min` minutes. `"all-at-once"`: at once (on a heavy model SageMaker
  still watches the alarms for `interval_min` minutes, its baking period; CodeDeploy completes a Lambda
  rollout at once). Default: canary, 10 % for 5 minutes.
- `alarms`: what stops a rollout and rolls it back: the new version's share of 5xx answers (`error_rate`, 0..1)
  and its p99 latency (`p99_ms`), each judged once the version has answered `min_requests` requests in the
  alarm's period. Default: 1 % errors, p99 at the model's `latency_budget_ms` (else 80 % of its timeout).
- `variants`: A/B testing, two or more model files with fixed traffic weights (percent, summing to 100), each with
  its own name and version; `path` is then left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["canary", "linear", "all-at-once"]
AlarmMetric = Literal["error_rate", "p99_ms"]
DEFAULT_ERROR_RATE = 0.01
#: CloudWatch period of the rollout alarms (seconds); the local twin compresses it with the schedule.
ALARM_PERIOD_S = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutAlarm(_Strict):
    metric: AlarmMetric
    threshold: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _in_range(self) -> RolloutAlarm:
        if self.metric == "error_rate" and self.threshold >= 1:
            raise ValueError(f"an error_rate threshold is a share between 0 and 1 (0.01 is 1 %), not "
                             f"{self.threshold:g}")
        return self


class Rollout(_Strict):
    strategy: Strategy = "canary"
    percent: Annotated[int, Field(ge=1, le=99)] = 10
    #: CodeDeploy accepts intervals up to 2880 minutes (two days).
    interval_min: Annotated[int, Field(ge=1, le=2880)] = 5
    alarms: list[RolloutAlarm] | None = None
    min_requests: Annotated[int, Field(ge=1, le=100000)] = 20

    @model_validator(mode="before")
    @classmethod
    def _fields_match_strategy(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("strategy") == "all-at-once" and "percent" in data:
            raise ValueError("percent only applies to strategy = 'canary' or 'linear': all-at-once shifts all the "
                             "traffic at once; remove percent or pick canary or linear")
        return data

    @model_validator(mode="after")
    def _unique_alarms(self) -> Rollout:
        metrics = [a.metric for a in self.alarms or []]
        dupes = sorted({m for m in metrics if metrics.count(m) > 1})
        if dupes:
            raise ValueError(f"alarms: one threshold per metric; {', '.join(dupes)} appears more than once")
        return self

    def schedule(self) -> list[tuple[int, int]]:
        """`(minute, percent)` steps: from each minute on, the new version answers that percent of the traffic
        (CodeDeploy's time-based canary and linear configurations). All at once: 100 % from minute 0."""
        if self.strategy == "all-at-once":
            return [(0, 100)]
        if self.strategy == "canary":
            return [(0, self.percent), (self.interval_min, 100)]
        steps = [(i * self.interval_min, min(100, (i + 1) * self.percent))
                 for i in range(-(-100 // self.percent))]
        return steps

    @property
    def duration_min(self) -> int:
        """Minutes from the first shift to completion (the last shift completes a Lambda rollout)."""
        return self.schedule()[-1][0]

    def thresholds(self, *, latency_budget_ms: int | None, timeout_s: int) -> dict[AlarmMetric, float]:
        """Each alarm's threshold, the defaults filled in."""
        if self.alarms is not None:
            return {a.metric: a.threshold for a in self.alarms}
        return {"error_rate": DEFAULT_ERROR_RATE,
                "p99_ms": float(latency_budget_ms) if latency_budget_ms else timeout_s * 1000 * 0.8}


def check_heavy_rollout(rollout: Rollout) -> None:
    """SageMaker's limits on a blue/green deployment: a canary of at most 50 % of the fleet, linear steps of
    10-50 %, at most an hour between steps."""
    if rollout.interval_min > 60:
        raise ValueError(f"rollout.interval_min ({rollout.interval_min}) is at most 60 on a heavy model: SageMaker "
                         "waits at most an hour between the steps of a blue/green deployment")
    if rollout.strategy == "canary" and rollout.percent > 50:
        raise ValueError(f"rollout.percent ({rollout.percent}) is at most 50 for a heavy model's canary (SageMaker "
                         "sizes the canary as a share of the fleet, up to half)")
    if rollout.strategy == "linear" and not 10 <= rollout.percent <= 50:
        raise ValueError(f"rollout.percent ({rollout.percent}) must be 10-50 for a heavy model's linear rollout "
                         "(SageMaker's step size, as a share of the fleet)")


class Variant(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
    path: Path
    #: Percent of the model's traffic this variant answers.
    weight: Annotated[int, Field(ge=1, le=99)]
    #: Shown in responses; defaults to the file's digest.
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None


def check_variants(variants: list[Variant]) -> list[Variant]:
    if len(variants) < 2:
        raise ValueError("an A/B test needs at least two variants; for one model file set path instead")
    names = [v.name for v in variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"names must be unique; {', '.join(dupes)} appears more than once")
    total = sum(v.weight for v in variants)
    if total != 100:
        raise ValueError(f"the weights are percentages and must sum to 100, not {total}")
    return variants

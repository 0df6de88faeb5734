"""Manifest tables of cascades, latency budgets and circuit breakers.

```toml
[[models]]                     # a heavy model
name = "digits-heavy"
budget_ms = 2000               # default latency budget of its predict route (x-latency-budget-ms overrides)
fallback = "digits-light"      # while its circuit is open (or its budget is spent) this light model answers
circuit = { failures = 5, window_s = 30, cool_down_s = 15, slow_call_ms = 1000 }

[[cascades]]
name = "digits"
stages = ["digits-light", "digits-heavy"]
accept = { output = "probabilities", min_confidence = 0.8 }
budget_ms = 2000
cache = { ttl_s = 600 }
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inferstack import env
from inferstack.cache.config import CacheConfig
from inferstack.cascade.budget import MAX_BUDGET_MS

if TYPE_CHECKING:
    from inferstack.manifest import Model



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Circuit(_Strict):
    """A circuit breaker around a heavy model's endpoint calls, per execution environment: after `failures`
    failed or timed-out calls within `window_s` it opens for `cool_down_s`, then lets one probe through. A call
    cut short by its latency budget counts as a failure when it had at least `slow_call_ms`."""

    failures: Annotated[int, Field(ge=1, le=1000)] = 5
    window_s: Annotated[float, Field(gt=0, le=3600)] = 30
    cool_down_s: Annotated[float, Field(gt=0, le=3600)] = 15
    slow_call_ms: Annotated[int, Field(ge=1, le=MAX_BUDGET_MS)] = 1000


class Accept(_Strict):
    """Which rows a stage answers: those whose `output` (probabilities: the top one; a score: itself) reaches
    `min_confidence`; the others go to the next stage. Or a custom rule: `rule` names a Python file whose
    `accept(outputs: dict[str, numpy.ndarray]) -> numpy.ndarray` says, per row, whether a stage's answer stands
    (`inferstack.cascade.rules`); it is packaged with the cascade."""

    output: Annotated[str, Field(min_length=1, max_length=128)] = "probabilities"
    min_confidence: Annotated[float, Field(gt=0, le=1)] | None = None
    rule: Path | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Accept:
        if (self.min_confidence is None) == (self.rule is None):
            raise ValueError("give min_confidence (a threshold on the output's top value) or rule (a Python file "
                             "with accept(outputs)), one of them")
        return self


class Cascade(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
    stages: list[Annotated[str, Field(min_length=1)]]
    accept: Accept
    budget_ms: Annotated[int, Field(ge=1, le=MAX_BUDGET_MS)] | None = None
    cache: CacheConfig | None = None
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[str]) -> list[str]:
        if len(stages) < 2:
            raise ValueError("a cascade needs at least two stages, e.g. [\"<light model>\", \"<heavy model>\"]")
        if len(set(stages)) != len(stages):
            raise ValueError("a cascade's stages must be distinct models")
        return stages


def check_cascades(models: Sequence[Model], cascades: Sequence[Cascade]) -> None:
    """What the manifest alone can tell (the signatures are checked when the catalog is built)."""
    by_name = {m.name: m for m in models}
    names = [c.name for c in cascades]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"cascade names must be unique; {', '.join(dupes)} appears more than once")
    for c in cascades:
        unknown = [s for s in c.stages if s not in by_name]
        if unknown:
            raise ValueError(f"cascade {c.name!r}: stage(s) {', '.join(unknown)} are not models of this manifest; "
                             f"declare them as [[models]] or fix the names")
        first = by_name[c.stages[0]]
        if first.tier != "light":
            raise ValueError(f"cascade {c.name!r}: its first stage {first.name!r} must be a light model (it runs in "
                             "the cascade's own function, on every row)")
        with_handler = [s for s in c.stages if by_name[s].handler is not None]
        if with_handler:
            raise ValueError(f"cascade {c.name!r}: stage(s) {', '.join(with_handler)} have a handler; a cascade's "
                             "stages take tensors (models without a handler)")
    for m in models:
        fallback = m.fallback
        if fallback is None:
            continue
        other = by_name.get(fallback)
        if other is None or other.tier != "light":
            raise ValueError(f"model {m.name!r}: fallback {fallback!r} must name a light model of this manifest")


class GuardRuntime(_Strict):
    """What a heavy model's functions are told (`$INFERSTACK_GUARD`)."""

    budget_ms: int | None = None
    circuit: Circuit = Circuit()
    fallback: str | None = None

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls) -> GuardRuntime:
        raw = os.environ.get(env.GUARD)
        return cls.model_validate_json(raw) if raw else cls()


class StageRuntime(_Strict):
    model: str
    tier: str
    endpoint: str | None = None
    component: str | None = None
    circuit: Circuit = Circuit()


class CascadeRuntime(_Strict):
    """What a cascade function is told (`$INFERSTACK_CASCADE`)."""

    name: str
    stages: list[StageRuntime]
    accept: Accept
    budget_ms: int | None = None

    def to_env(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_env(cls) -> CascadeRuntime:
        return cls.model_validate_json(os.environ[env.CASCADE])

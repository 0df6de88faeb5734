"""Which tier and settings meet a model's latency budget at the lowest cost, and where the tiers break even.

For each model it costs every option with the same arithmetic as `inferstack cost` (`estimate.model_lines`,
priced alone) and estimates each option's p99 latency from the measured durations: the light tier on demand,
with SnapStart, with provisioned concurrency; the jobs tier (answers later); the heavy tier on each single-GPU
instance family of the price book, always on or scaled to zero. An option meets the budget when its p99 does.
The p99 of a month is a cold path's latency as soon as more than 1% of requests take it (cold starts, wakes).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from inferstack.manifest import ColdStart, Instances, Manifest, Model
from inferstack_infra.cost import usage
from inferstack_infra.cost.estimate import model_lines, price
from inferstack_infra.cost.inventory import fixed_usage
from inferstack_infra.cost.prices import PriceBook
from inferstack_infra.cost.profile import Measured, Traffic
from inferstack_infra.cost.usage import Line, cpu_factor

#: API Gateway and Lambda's own time per request, in the region (assumed: tens of milliseconds are typical).
API_OVERHEAD_S = 0.015
#: A cold start's work before the init code runs (a new execution environment, the code fetched), assumed; and
#: a SnapStart restore (AWS publishes no figure: "as low as sub-second"), assumed.
SANDBOX_S = 0.15
SNAPSTART_RESTORE_S = 0.4
#: Time for the jobs tier's event source to hand a new message to the worker (its long poll returns when
#: a message arrives), assumed.
JOBS_PICKUP_S = 1.0
#: The share of requests a p99 may leave out.
P99_SHARE = 0.01
#: GPU memory of the single-GPU instances (GB): a model needs about three times its file size on the GPU.
GPU_MEMORY_GB = {"g4dn": 16, "g5": 24, "g6": 24, "g6e": 48}
GPU_MEMORY_FACTOR = 3.0
#: A light model moved to another tier keeps its memory; a heavy one on Lambda gets one full vCPU.
HEAVY_AS_LIGHT_MB = usage.VCPU_MB
#: A light model on the heavy tier: an instance's capacity is taken as half of one CPU thread's throughput here
#: (the GPU's is unknown); a heavy model keeps its manifest's target invocations per instance.
LIGHT_AS_HEAVY_SHARE = 0.5

#: The most instances the manifest allows a heavy model, and provisioned concurrency a light one.
MAX_INSTANCES = 100
MAX_PROVISIONED = 1000

Kind = Literal["light", "snapstart", "provisioned", "jobs", "heavy", "heavy-zero"]


@dataclass(frozen=True)
class Facts:
    """What the advice needs about a model beyond its settings: its measured durations, whether its function
    fits Lambda (code and layers within 250 MB) and its file's size (for the GPU's memory)."""

    measured: Measured
    fits_lambda: bool = True
    model_mb: float = 1.0


@dataclass(frozen=True)
class Option:
    kind: Kind
    model: Model
    jobs_share: float
    instance_type: str | None = None

    @property
    def tier(self) -> str:
        return {"snapstart": "light", "provisioned": "light", "heavy-zero": "heavy"}.get(self.kind, self.kind)

    @property
    def label(self) -> str:
        m = self.model
        if self.kind in ("heavy", "heavy-zero"):
            scale = "scaled to zero" if self.kind == "heavy-zero" else "always on"
            return f"heavy, {self.instance_type}, {scale} (max {m.instances.max})"
        if self.kind == "jobs":
            return f"jobs ({m.memory_mb} MB worker)"
        setting = {"light": "on demand", "snapstart": "SnapStart",
                   "provisioned": f"provisioned concurrency {m.cold_start.min_instances}-{m.cold_start.max_instances}"}
        return f"light, {setting[self.kind]} ({m.memory_mb} MB)"


@dataclass(frozen=True)
class Assessment:
    option: Option
    cost: float
    p99_s: float | None
    meets: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"option": self.option.label, "tier": self.option.tier, "kind": self.option.kind,
                "usd_per_month": round(self.cost, 2),
                "p99_ms": None if self.p99_s is None else round(self.p99_s * 1000, 1),
                "meets_budget": self.meets, "reason": self.reason}


@dataclass(frozen=True)
class Advice:
    model: str
    budget_ms: float | None
    traffic: Traffic
    assessments: list[Assessment]
    break_evens: list[str]

    @property
    def verdict(self) -> Assessment | None:
        return next((a for a in self.assessments if a.meets), None)

    def to_json(self) -> dict[str, Any]:
        verdict = self.verdict
        return {"model": self.model, "budget_ms": self.budget_ms, "traffic": vars(self.traffic),
                "verdict": verdict.to_json() if verdict else None,
                "options": [a.to_json() for a in self.assessments], "break_even": self.break_evens}


def gpu_family(instance_type: str) -> str:
    return instance_type.split(".")[1]


def single_gpu_types(book: PriceBook) -> list[str]:
    return [t for t in book.instance_types() if t.endswith(".xlarge") and gpu_family(t) in GPU_MEMORY_GB]


def build_option(kind: Kind, model: Model, traffic: Traffic, facts: Facts,
                 instance_type: str | None = None) -> Option:
    """The model configured for this kind of option, sized for the traffic."""
    memory = model.memory_mb if model.tier == "light" else HEAVY_AS_LIGHT_MB
    light = model.model_copy(update={"tier": "light", "memory_mb": memory, "cold_start": ColdStart()})
    if kind in ("light", "jobs"):
        return Option(kind, light, 1.0 if kind == "jobs" else 0.0)
    if kind == "snapstart":
        return Option(kind, light.model_copy(update={"cold_start": ColdStart(mode="snapstart")}), 0.0)
    if kind == "provisioned":
        concurrency = traffic.rps * usage.lambda_duration(facts.measured, memory)
        top = min(MAX_PROVISIONED, max(1, math.ceil(2 * concurrency / 0.7)))
        pc = ColdStart(mode="provisioned", min=1, max=top, target_utilization=0.7)
        return Option(kind, light.model_copy(update={"cold_start": pc}), 0.0)
    if model.tier == "heavy":
        target = model.instances.target_invocations_per_instance
    else:
        target = max(1, int(60 / max(facts.measured.warm_s, 1e-4) * LIGHT_AS_HEAVY_SHARE))
    needed = min(MAX_INSTANCES, max(1, math.ceil(traffic.rps * 60 / target)))
    instances = Instances(min=0 if kind == "heavy-zero" else 1, max=needed, target_invocations_per_instance=target)
    heavy = model.model_copy(update={"tier": "heavy", "instance_type": instance_type, "instances": instances})
    return Option(kind, heavy, 0.0, instance_type)


def option_lines(manifest: Manifest, option: Option, traffic: Traffic, facts: Facts) -> list[Line]:
    """The option's usage for one model alone: its traffic paths and the resources it owns."""
    shaped = replace(traffic, jobs_share=option.jobs_share)
    alone = manifest.model_copy(update={"models": [option.model]})
    lines = model_lines(alone, option.model, shaped, facts.measured)
    return lines + [Line(f.owner, f.meter, f.quantity, f.note) for f in fixed_usage(alone)
                    if f.owner == option.model.name and f.quantity > 0]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 60 else f"{seconds / 60:.0f} min"


def _latency(option: Option, traffic: Traffic, facts: Facts) -> tuple[float, str]:
    """The option's p99 latency during active hours, and the one-line reason for it."""
    m, measured = option.model, facts.measured
    if option.tier in ("light", "jobs"):
        warm = usage.lambda_duration(measured, m.memory_mb)
        init = measured.init_s * cpu_factor(m.memory_mb)
        rps = traffic.rps
        cold = usage.cold_starts(traffic, rps, warm)
        share = cold / max(1.0, traffic.requests)
    if option.kind == "jobs":
        batch_s = warm + usage.WORKER_OVERHEAD_S
        p99 = JOBS_PICKUP_S + batch_s + (SANDBOX_S + init if share > P99_SHARE else 0.0)
        return p99, (f"answers later: a job's result is ready in about {_ms(p99)} (queue pickup and the worker); "
                     "for callers that can wait")
    if option.kind == "light":
        cold_p = API_OVERHEAD_S + warm + SANDBOX_S + init
        p99 = cold_p if share > P99_SHARE else API_OVERHEAD_S + warm
        return p99, (f"{share:.2%} of requests meet a cold start ({_ms(cold_p)}); "
                     f"warm {_ms(API_OVERHEAD_S + warm)}; no standing cost")
    if option.kind == "snapstart":
        cold_p = API_OVERHEAD_S + warm + SANDBOX_S + SNAPSTART_RESTORE_S
        p99 = cold_p if share > P99_SHARE else API_OVERHEAD_S + warm
        return p99, (f"{share:.2%} of requests restore a snapshot ({_ms(cold_p)} instead of a {_ms(init)} init); "
                     "pays to keep the snapshot cached")
    if option.kind == "provisioned":
        pc = m.cold_start
        concurrency = traffic.rps * warm
        spill = max(0.0, concurrency - pc.max_instances) / concurrency if concurrency else 0.0
        p99 = API_OVERHEAD_S + warm + (SANDBOX_S + init if spill > P99_SHARE else 0.0)
        return p99, (f"{pc.min_instances} to {pc.max_instances} environments kept warm: no cold start within them"
                     f"{f' ({spill:.0%} of requests beyond them)' if spill else ''}; pays for them around the clock")
    assert option.instance_type
    warm_h = API_OVERHEAD_S + usage.endpoint_s(m, measured)
    load = usage.endpoint_load(m, traffic)
    gpu = GPU_MEMORY_GB[gpu_family(option.instance_type)]
    if facts.model_mb * GPU_MEMORY_FACTOR > gpu * 1024:
        return math.inf, f"the model ({facts.model_mb:,.0f} MB) needs more than the GPU's {gpu} GB"
    if load.over_capacity:
        return math.inf, (f"needs more than {MAX_INSTANCES} instances at {m.instances.target_invocations_per_instance}"
                          " invocations a minute each")
    per_minute = m.instances.target_invocations_per_instance
    if option.kind == "heavy":
        return warm_h, (f"{load.instances} instance(s) at {per_minute:,} invocations a minute each while active, one "
                        f"kept while idle; p99 {_ms(warm_h)} at most (the model's time measured on CPU)")
    share = load.refused / max(1.0, traffic.requests)
    p99 = usage.WAKE_S if share > P99_SHARE else warm_h
    return p99, (f"up only while called: {load.wakes:,.0f} wakes a month of about {_ms(usage.WAKE_S)}, "
                 f"{share:.2%} of requests answered 503 + Retry-After (jobs wait)")


def options_for(model: Model, traffic: Traffic, facts: Facts, book: PriceBook) -> list[Option]:
    kinds: list[tuple[Kind, str | None]] = []
    if facts.fits_lambda:
        kinds += [("light", None), ("snapstart", None), ("provisioned", None), ("jobs", None)]
    for instance_type in single_gpu_types(book):
        kinds += [("heavy", instance_type), ("heavy-zero", instance_type)]
    return [build_option(kind, model, traffic, facts, instance_type) for kind, instance_type in kinds]


def break_even(cost_a: Callable[[float], float], cost_b: Callable[[float], float], low: float = 1e-4,
               high: float = 1e5) -> float | None:
    """The first request rate (req/s, on a log scale from `low` to `high`) where a's cost crosses b's."""
    def below(rps: float) -> bool:
        return cost_a(rps) < cost_b(rps)

    points = [low * (high / low) ** (i / 60) for i in range(61)]
    for lo, hi in itertools.pairwise(points):
        if below(lo) != below(hi):
            return _bisect(below, lo, hi)
    return None


def _bisect(below: Callable[[float], bool], lo: float, hi: float) -> float:
    start = below(lo)
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if below(mid) == start else (lo, mid)
    return hi


#: The highest request rate the break-even search considers.
BREAK_EVEN_MAX_RPS = 1e5


def _capacity(option: Option) -> float:
    """The highest request rate the option can serve (a heavy model's instances are at most MAX_INSTANCES)."""
    if option.tier != "heavy":
        return math.inf
    return MAX_INSTANCES * option.model.instances.target_invocations_per_instance / 60


@dataclass(frozen=True)
class Advisor:
    book: PriceBook
    manifest: Manifest

    def cost(self, option: Option, traffic: Traffic, facts: Facts) -> float:
        return sum(p.cost for p in price(self.book, option_lines(self.manifest, option, traffic, facts)))

    def assess(self, option: Option, traffic: Traffic, facts: Facts, budget_s: float | None) -> Assessment:
        p99, reason = _latency(option, traffic, facts)
        return Assessment(option, self.cost(option, traffic, facts), p99, budget_s is None or p99 <= budget_s, reason)

    def advise(self, model: Model, traffic: Traffic, facts: Facts, budget_ms: float | None) -> Advice:
        budget_s = budget_ms / 1000 if budget_ms is not None else None
        assessed = sorted((self.assess(o, traffic, facts, budget_s) for o in options_for(model, traffic, facts,
                                                                                         self.book)),
                          key=lambda a: (not a.meets, a.cost))
        return Advice(model.name, budget_ms, traffic, assessed, self._break_evens(model, traffic, facts, assessed))

    def _cost_at(self, option: Option, model: Model, traffic: Traffic, facts: Facts) -> Callable[[float], float]:
        """The option's cost as a function of the request rate (its settings sized anew for each)."""
        def at(rps: float) -> float:
            t = traffic.with_rps(rps)
            return self.cost(build_option(option.kind, model, t, facts, option.instance_type), t, facts)
        return at

    def _break_evens(self, model: Model, traffic: Traffic, facts: Facts, assessed: list[Assessment]) -> list[str]:
        """Where the chosen option's cost crosses the cheapest option of each other tier, traffic otherwise
        alike."""
        chosen = next((a for a in assessed if a.meets), None)
        if chosen is None:
            return []
        rivals: dict[str, Assessment] = {}
        for a in sorted(assessed, key=lambda a: a.cost):
            rivals.setdefault(a.option.tier, a)
        out = []
        ours = self._cost_at(chosen.option, model, traffic, facts)
        for tier, rival in rivals.items():
            if tier == chosen.option.tier:
                continue
            theirs = self._cost_at(rival.option, model, traffic, facts)
            high = min(BREAK_EVEN_MAX_RPS, _capacity(chosen.option), _capacity(rival.option))
            rps = break_even(ours, theirs, high=high)
            if rps is None:
                out.append(f"{rival.option.label}: no break-even with {chosen.option.label} up to {high:,.4g} req/s")
            else:
                cheaper = rival if theirs(rps * 1.5) < ours(rps * 1.5) else chosen
                out.append(f"{rival.option.label} and {chosen.option.label} cost the same at {rps:,.4g} req/s; "
                           f"above it {cheaper.option.label} is the cheaper")
        return out

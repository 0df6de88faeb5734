"""A month's bill for a manifest and a traffic profile: per model and per AWS service, as a table or JSON.

Usage lines (`usage`, `inventory`) are priced by meter over their sum (so tiers apply to the month's total, as
AWS bills them) and each line gets its share of its meter's cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferstack.manifest import Manifest, Model
from inferstack.topology import FunctionSpec, functions, predict_function_key, worker_function_key
from inferstack_infra.cost import usage
from inferstack_infra.cost.inventory import SHARED, fixed_usage
from inferstack_infra.cost.prices import METERS, SERVICES, PriceBook
from inferstack_infra.cost.profile import Measured, Traffic, TrafficProfile
from inferstack_infra.cost.usage import Line


@dataclass(frozen=True)
class Priced:
    line: Line
    cost: float

    @property
    def service(self) -> str:
        return METERS[self.line.meter].service


def _memory(manifest: Manifest) -> dict[str, int]:
    specs: list[FunctionSpec] = functions(manifest)
    return {s.key: s.memory_mb for s in specs} | {s.kind: s.memory_mb for s in specs if s.kind in ("api", "webhooks")}


def model_lines(manifest: Manifest, model: Model, traffic: Traffic, measured: Measured) -> list[Line]:
    """Everything one model uses in a month with this traffic (its predict route, its jobs, its endpoint)."""
    memory = _memory(manifest)
    if model.tier == "light":
        lines = usage.light_predict(model, traffic, measured)
    else:
        lines = usage.heavy_predict(model, traffic, measured, memory[predict_function_key(model.name)])
        lines += usage.heavy_endpoint(model, traffic)
    lines += usage.jobs(model, traffic, measured, manifest.jobs, api_memory_mb=memory["api"],
                        worker_memory_mb=memory[worker_function_key(model.name)],
                        webhook_memory_mb=memory["webhooks"])
    return [line for line in lines if line.quantity > 0]


def deployment_lines(manifest: Manifest, profile: TrafficProfile, measured: Mapping[str, Measured]) -> list[Line]:
    lines = [line for m in manifest.models for line in model_lines(manifest, m, profile.of(m.name), measured[m.name])]
    return lines + [Line(f.owner, f.meter, f.quantity, f.note) for f in fixed_usage(manifest) if f.quantity > 0]


def price(book: PriceBook, lines: list[Line]) -> list[Priced]:
    """Each line's cost: its meter priced on the month's total quantity, shared out by quantity."""
    totals: dict[tuple[str, str | None], float] = defaultdict(float)
    for line in lines:
        totals[line.meter, line.variant] += line.quantity
    costs = {key: book.cost(key[0], quantity, key[1]) for key, quantity in totals.items()}
    return [Priced(line, costs[line.meter, line.variant] * line.quantity / totals[line.meter, line.variant]
                   if totals[line.meter, line.variant] else 0.0) for line in lines]


@dataclass(frozen=True)
class Estimate:
    region: str
    as_of: str
    priced: list[Priced]
    traffic: dict[str, Traffic]
    measured: dict[str, Measured]

    def by_owner(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for p in self.priced:
            row = out.setdefault(p.line.owner, dict.fromkeys(SERVICES, 0.0))
            row[p.service] += p.cost
        return out

    def owner_total(self, owner: str) -> float:
        return sum(p.cost for p in self.priced if p.line.owner == owner)

    @property
    def total(self) -> float:
        return sum(p.cost for p in self.priced)

    def to_json(self) -> dict[str, Any]:
        rows = self.by_owner()
        return {
            "region": self.region, "prices_as_of": self.as_of, "currency": "USD", "period": "month (730 hours)",
            "total": round(self.total, 2),
            "models": {owner: {"total": round(sum(row.values()), 2),
                               "services": {s: round(v, 2) for s, v in row.items() if v},
                               "traffic": vars(self.traffic[owner]) if owner in self.traffic else None,
                               "measured": vars(self.measured[owner]) if owner in self.measured else None}
                       for owner, row in rows.items()},
            "lines": [{"owner": p.line.owner, "service": p.service, "meter": p.line.meter,
                       "quantity": p.line.quantity, "unit": METERS[p.line.meter].unit, "cost": p.cost,
                       "note": p.line.note, **({"instance_type": p.line.variant} if p.line.variant else {})}
                      for p in self.priced],
        }

    def table(self) -> str:
        rows = self.by_owner()
        services = [s for s in SERVICES if any(row[s] >= 0.005 for row in rows.values())]
        owners = sorted(rows, key=lambda o: (o == SHARED, o))
        width = max(10, *(len(o) for o in owners))
        header = f"{'USD/month':<{width}}" + "".join(f"{_short(s):>12}" for s in services) + f"{'total':>12}"
        out = [header]
        for owner in owners:
            row = rows[owner]
            out.append(f"{owner:<{width}}" + "".join(f"{_money(row[s]):>12}" for s in services)
                       + f"{_money(sum(row.values())):>12}")
        sums = {s: sum(row[s] for row in rows.values()) for s in services}
        out.append(f"{'total':<{width}}" + "".join(f"{_money(sums[s]):>12}" for s in services)
                   + f"{_money(self.total):>12}")
        return "\n".join(out)


def _short(service: str) -> str:
    return {"Secrets Manager": "Secrets", "Data transfer": "Transfer"}.get(service, service)


def _money(value: float) -> str:
    if value == 0:
        return "-"
    return f"{value:,.2f}" if value >= 0.005 else "<0.01"


def estimate(manifest: Manifest, profile: TrafficProfile, measured: Mapping[str, Measured],
             book: PriceBook) -> Estimate:
    lines = deployment_lines(manifest, profile, measured)
    return Estimate(book.region, book.as_of, price(book, lines), {m.name: profile.of(m.name) for m in manifest.models},
                    dict(measured))


def warnings(manifest: Manifest, profile: TrafficProfile, measured: Mapping[str, Measured]) -> list[str]:
    """Where the traffic exceeds what the manifest's settings serve (the estimate then counts what they
    allow; the excess would be throttled)."""
    out = []
    for m in manifest.models:
        traffic = profile.of(m.name)
        if m.tier == "heavy":
            load = usage.endpoint_load(m, traffic)
            if load.over_capacity:
                need = -(-traffic.rps * 60 // m.instances.target_invocations_per_instance)
                out.append(f"{m.name}: {traffic.rps:g} req/s needs {need:.0f} instances at "
                           f"{m.instances.target_invocations_per_instance} invocations a minute each, and "
                           f"instances.max is {m.instances.max}: raise max (or the target)")
            continue
        concurrency = traffic.rps * (1 - traffic.jobs_share) * usage.lambda_duration(measured[m.name], m.memory_mb)
        if m.reserved_concurrency is not None and concurrency > m.reserved_concurrency:
            out.append(f"{m.name}: about {concurrency:.0f} concurrent executions, above reserved_concurrency "
                       f"{m.reserved_concurrency}: the excess is throttled (429)")
        if m.cold_start.mode == "provisioned" and concurrency > m.cold_start.max_instances:
            out.append(f"{m.name}: about {concurrency:.0f} concurrent executions, above cold_start.max "
                       f"{m.cold_start.max_instances}: the excess runs on demand, with cold starts")
    return out

"""`inferstack cost` (a month's bill per model and per AWS service) and `inferstack advise` (the cheapest tier
that meets each model's latency budget, and where the tiers break even)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from inferstack.manifest import Manifest
from inferstack_infra.cli.common import fail, manifest, print_json


def _inputs(args: argparse.Namespace) -> tuple[Manifest, Any, Any, dict[str, Any]]:
    """The manifest, the price book, the traffic profile and each model's measured durations."""
    from inferstack_infra.cost.measure import measurements
    from inferstack_infra.cost.prices import PriceBook, PriceError
    from inferstack_infra.cost.profile import build_profile, per_model_values

    loaded = manifest(args.manifest)
    names = [m.name for m in loaded.models]
    try:
        book = PriceBook.load(args.region)
        profile = build_profile(names, rps=args.rps, hours=args.hours, payload_kb=args.payload_kb, jobs=args.jobs)
        default_ms, durations = per_model_values(args.duration_ms, float, names, "--duration-ms")
    except (PriceError, ValueError) as exc:
        fail(str(exc), 2)
    overrides = {n: durations.get(n, default_ms) for n in names if n in durations or default_ms is not None}
    measured = measurements(loaded, remeasure=args.remeasure, overrides={k: v for k, v in overrides.items() if v},
                            log=lambda line: print(line, file=sys.stderr))
    return loaded, book, profile, measured


def _describe(m: Manifest, profile: Any, measured: dict[str, Any]) -> list[str]:
    lines = []
    for model in m.models:
        t, d = profile.of(model.name), measured[model.name]
        lines.append(f"  {model.name:<12} {t.rps:g} req/s for {t.hours_per_day:g} h/day, {t.payload_kb:g} KB payloads, "
                     f"{t.jobs_share:.0%} as jobs; {d.warm_s * 1000:.3g} ms a request, {d.init_s:.2g} s init "
                     f"({d.source})")
    return lines


def cmd_cost(args: argparse.Namespace) -> int:
    from inferstack_infra.cost.estimate import estimate, warnings

    loaded, book, profile, measured = _inputs(args)
    result = estimate(loaded, profile, measured, book)
    notes = warnings(loaded, profile, measured)
    if args.json:
        sources = {table: book.source(table) for table in book.tables}
        print_json({**result.to_json(), "warnings": notes, "price_sources": sources})
        return 0
    print(f"{loaded.name}: a month's estimate in {book.region}, AWS list prices as of {book.as_of} "
          "(USD, 730 hours, before free tiers and tax)")
    print("\n".join(_describe(loaded, profile, measured)) + "\n")
    print(result.table())
    for note in notes:
        print(f"\nwarning: {note}")
    print("\nper meter and price sources: --json; assumptions: inferstack_infra/cost/usage.py")
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from inferstack_infra.cost.advise import Advisor, Facts
    from inferstack_infra.cost.profile import per_model_values

    loaded, book, profile, measured = _inputs(args)
    names = [m.name for m in loaded.models]
    try:
        default_budget, budgets = per_model_values(args.budget_ms, float, names, "--budget-ms")
    except ValueError as exc:
        fail(str(exc), 2)
    sizes = _light_sizes(loaded)
    advisor = Advisor(book, loaded)
    advice = []
    for m in loaded.models:
        budget = budgets.get(m.name, default_budget if default_budget is not None else m.latency_budget_ms)
        facts = Facts(measured[m.name], fits_lambda=sizes[m.name] <= _lambda_limit_mb(),
                      model_mb=loaded.model_file(m).stat().st_size / 1024**2)
        advice.append((m, advisor.advise(m, profile.of(m.name), facts, budget), sizes[m.name]))
    if args.json:
        print_json({"region": book.region, "prices_as_of": book.as_of, "models": [a.to_json() for _, a, _ in advice]})
        return 0
    print(f"{loaded.name}: the cheapest tier that meets each model's p99 budget, {book.region} list prices as of "
          f"{book.as_of} (USD a month)")
    print("\n".join(_describe(loaded, profile, measured)))
    for m, a, size in advice:
        print(f"\n{m.name} (now {m.tier}; as a Lambda function {size:,.0f} MB of {_lambda_limit_mb():.0f}): "
              + (f"budget p99 {a.budget_ms:g} ms" if a.budget_ms is not None else "no budget: the cheapest option"))
        verdict = a.verdict
        print(f"  verdict: {verdict.option.label}, ${verdict.cost:,.2f}/month" if verdict
              else "  verdict: no option meets the budget")
        shown, others = _shown(a.assessments)
        for x in shown:
            p99 = "-" if x.p99_s is None or x.p99_s == float("inf") else \
                f"{x.p99_s * 1000:,.0f} ms" if x.p99_s < 60 else f"{x.p99_s / 60:.0f} min"
            print(f"  {'ok' if x.meets else '--'} {x.cost:>11,.2f}  {p99:>9}  {x.option.label:<46} {x.reason}")
        if others:
            print("  other GPU families (--json for each): " + ", ".join(
                f"{x.option.instance_type} {'scaled to zero' if x.option.kind == 'heavy-zero' else 'always on'} "
                f"${x.cost:,.0f}" for x in others))
        for line in a.break_evens:
            print(f"  break-even: {line}")
    return 0


def _shown(assessments: list[Any]) -> tuple[list[Any], list[Any]]:
    """Every light and jobs option, and of the heavy ones the cheapest family's (always on and scaled to zero)."""
    heavy = [x for x in assessments if x.option.tier == "heavy"]
    cheapest = min(heavy, key=lambda x: x.cost).option.instance_type if heavy else None
    shown = [x for x in assessments if x.option.tier != "heavy" or x.option.instance_type == cheapest]
    return shown, [x for x in heavy if x.option.instance_type != cheapest and x.option.kind == "heavy"]


def _lambda_limit_mb() -> float:
    from inferstack_infra.packaging import LAMBDA_MAX_UNZIPPED_BYTES

    return LAMBDA_MAX_UNZIPPED_BYTES / 1024**2


def _light_sizes(loaded: Manifest) -> dict[str, float]:
    """Each model's predict function as the light tier would package it (code and layers, MB), as doctor does."""
    from inferstack.topology import functions, predict_function_key
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import as_light, function_size

    light = as_light(loaded)
    catalog = build_catalog(light)
    specs = {f.key: f for f in functions(light)}
    return {m.name: sum(function_size(specs[predict_function_key(m.name)], light, catalog)) / 1024**2
            for m in loaded.models}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", default="inferstack.toml")
    p.add_argument("--region", default="us-east-1", help="the price book's region (default us-east-1)")
    p.add_argument("--rps", action="append", metavar="[MODEL=]N",
                   help="requests a second while active (default 1); repeat with MODEL= for one model")
    p.add_argument("--hours", action="append", metavar="[MODEL=]H", help="active hours a day, 0-24 (default 24)")
    p.add_argument("--payload-kb", action="append", metavar="[MODEL=]KB",
                   help="size of a request body and of its answer, KB (default 1)")
    p.add_argument("--jobs", action="append", metavar="[MODEL=]SHARE",
                   help="share of requests sent as jobs, 0-1 (default 0)")
    p.add_argument("--duration-ms", action="append", metavar="[MODEL=]MS",
                   help="one request's time on one vCPU instead of the measured one")
    p.add_argument("--remeasure", action="store_true", help="measure every model again (ignore cached figures)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    cost = sub.add_parser("cost", help="estimate a month's AWS bill per model and per service")
    _common(cost)
    cost.set_defaults(func=cmd_cost)
    advise = sub.add_parser("advise", help="the cheapest tier and settings that meet each model's latency budget")
    _common(advise)
    advise.add_argument("--budget-ms", action="append", metavar="[MODEL=]MS",
                        help="p99 latency budget (default: the model's latency_budget_ms in the manifest)")
    advise.set_defaults(func=cmd_advise)

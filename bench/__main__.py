"""`make bench`: run every benchmark with its baselines and print figure, baseline, ratio and target."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import batches, calls, cascade, cost, heavy, light, local, minilm, optimize, plots, protocol, sizes, worker

RESULTS = Path(__file__).with_name("results.json")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'figure':<42}{'value':>12}  {'baseline':<10}{'value':>12}{'ratio':>8}{'target':>9}  met"]
    for row in rows:
        if not row["baselines"]:  # a measurement for others to use (inferstack cost reads it)
            lines.append(f"{row['figure']:<42}{row['value']:>12.4g}")
        for base, value in row["baselines"].items():
            ratio = row["value"] / value if value else float("nan")
            target = row["targets"].get(base)
            higher = row.get("better") == "higher"
            met = "" if target is None else ("yes" if (ratio >= target if higher else ratio <= target) else "NO")
            goal = "" if target is None else f"{'≥' if higher else '≤'}{target}x"
            lines.append(f"{row['figure']:<42}{row['value']:>12.4g}  {base:<10}{value:>12.4g}{ratio:>7.2f}x"
                         f"{goal:>9}  {met}")
    return "\n".join(lines)


def main() -> None:
    quick = "--quick" in sys.argv
    rows = light.run(runs=3 if quick else 10, requests=500 if quick else 2000)
    rows += worker.run(rounds=3 if quick else 7)
    rows += calls.run()
    rows += heavy.run(seconds=3 if quick else 8)
    rows += minilm.run(seconds=3 if quick else 8)
    rows += optimize.run(seconds=3 if quick else 8, runs=3 if quick else 5)
    rows += local.run(seconds=3 if quick else 8, soak_jobs=300 if quick else 2000)
    rows += protocol.run(seconds=3 if quick else 8)
    rows += cascade.run(requests=500 if quick else 2000)
    rows += batches.run(rows=100_000 if quick else 1_000_000)
    rows += sizes.run()
    rows += cost.run()
    print(table(rows))
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    png = plots.plot(rows, RESULTS.with_name("results.png"))
    print(f"\nwrote {RESULTS} and {png}")


if __name__ == "__main__":
    main()

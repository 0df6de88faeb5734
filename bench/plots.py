"""PNG plots of a `make bench` run: every figure against its baselines, as ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ratios, colors, targets = [], [], [], []
    for row in rows:
        higher = row.get("better") == "higher"
        for base, value in row["baselines"].items():
            if not value:
                continue
            ratio = row["value"] / value
            target = row["targets"].get(base)
            labels.append(f"{row['figure']}\nvs {base}")
            ratios.append(ratio)
            targets.append(target)
            met = target is None or (ratio >= target if higher else ratio <= target)
            colors.append("#2a9d8f" if met else "#e76f51")
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(labels) + 1.5))
    y = range(len(labels))
    ax.barh(list(y), ratios, color=colors)
    for i, target in enumerate(targets):
        if target is not None:
            ax.plot([target, target], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ratio to baseline (log scale); black tick: target; green: target met or none")
    ax.set_title("inferstack benchmarks")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out

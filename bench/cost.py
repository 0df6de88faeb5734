"""Each example model's time per request on one thread, and its init: what `inferstack cost` and `inferstack
advise` price Lambda duration and cold starts from (they read these rows from bench/results.json when the
model's version matches, instead of measuring again). Measured by `inferstack_infra.cost.measure`, the code
those commands use themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run() -> list[dict[str, Any]]:
    from inferstack.manifest import load_manifest
    from inferstack_infra.cost.measure import bench_rows

    return bench_rows(load_manifest(ROOT / "inferstack.toml"))


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))

"""How long each model takes, measured on this machine: the figures an estimate turns into GB-seconds and
latencies. `make bench` runs the same measurement and records it in `bench/results.json`; `inferstack cost`
takes it from there when it is of the model's current version, else measures (a few seconds a model) and
keeps the result in `build/cost/measurements.json`.

One onnxruntime thread, as on a function with one vCPU or less: `warm_s` is the median time of one request
through the predict path (`Predictor.predict`: validation or the handler, inference, the answer), `init_s` the
wall time of a fresh `python` loading and warming up the model (a cold start's init phase; with the whole
virtual environment on its path, so an upper bound of a function's trimmed bundle).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from inferstack import env
from inferstack.catalog import CatalogEntry
from inferstack.manifest import Manifest
from inferstack_infra.cost.profile import Measured
from inferstack_infra.packaging import BUILD_DIR
from inferstack_infra.paths import project_dir, python_path

CACHE = BUILD_DIR / "cost" / "measurements.json"
#: `make bench`'s results, where a project has them (this repository's `bench/`).
BENCH_RESULTS = project_dir() / "bench" / "results.json"
#: The `figure` prefix of the rows `make bench` writes for these measurements.
BENCH_FIGURE = "predict on one thread"

_INIT_SCRIPT = """
import sys
from pathlib import Path
from inferstack.catalog import CatalogEntry
from inferstack.inference.session import Predictor
Predictor.load(CatalogEntry.model_validate_json(sys.argv[1]), Path("/"))
"""


def median_seconds(fn: Callable[[], Any], budget_s: float = 1.5, least: int = 5, most: int = 200) -> float:
    """The median time of `fn` (after one warm-up call), over `least` to `most` calls within about `budget_s`."""
    fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < least or (time.perf_counter() - began < budget_s and len(times) < most):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def example_request(entry: CatalogEntry) -> Any:
    from inferstack_infra.load import example_inputs

    return example_inputs(entry.public().model_dump(mode="json"))


def measure_entry(entry: CatalogEntry, *, budget_s: float = 1.0) -> Measured:
    """Measure one model (its catalog entry with absolute paths)."""
    from inferstack.inference.session import Predictor

    saved = os.environ.get(env.INTRA_OP_THREADS)
    os.environ[env.INTRA_OP_THREADS] = "1"
    try:
        predictor = Predictor.load(entry, Path("/"))
        request = example_request(entry)
        warm = median_seconds(lambda: predictor.predict(request), budget_s=budget_s)
        inits = []
        for _ in range(3):  # the least of three: files in the page cache, and the least disturbed by other work
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _INIT_SCRIPT, entry.model_dump_json()], check=True,
                           capture_output=True, env={**os.environ, **python_path()})
            inits.append(time.perf_counter() - start)
    finally:
        if saved is None:
            os.environ.pop(env.INTRA_OP_THREADS, None)
        else:
            os.environ[env.INTRA_OP_THREADS] = saved
    return Measured(warm_s=warm, init_s=min(inits), source="measured on this machine")


def bench_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """`make bench`'s rows for these measurements (no baseline: they feed `inferstack cost`)."""
    from inferstack_infra.catalog import build_catalog

    rows = []
    for entry in build_catalog(manifest, bundled=False).models:
        m = measure_entry(entry)
        rows.append({"figure": f"{BENCH_FIGURE}, {entry.name} (ms)", "value": m.warm_s * 1000, "baselines": {},
                     "targets": {}, "model": entry.name, "version": entry.version, "init_s": m.init_s})
    return rows


def _from_bench(entry: CatalogEntry, path: Path) -> Measured | None:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("model") == entry.name and row.get("version") == entry.version \
                and str(row.get("figure", "")).startswith(BENCH_FIGURE):
            return Measured(warm_s=float(row["value"]) / 1000, init_s=float(row["init_s"]), source=path.name)
    return None


def measurements(manifest: Manifest, *, remeasure: bool = False, overrides: Mapping[str, float] | None = None,
                 log: Callable[[str], None] = lambda line: None, bench: Path | None = None,
                 cache: Path | None = None) -> dict[str, Measured]:
    """Every model's figures: `overrides` (warm ms, from --duration-ms), else bench/results.json, else the
    cache, else a new measurement (cached). A model's version changes with its file and handler."""
    from inferstack_infra.catalog import build_catalog

    overrides = overrides or {}
    bench, cache = bench or BENCH_RESULTS, cache or CACHE
    try:
        cached: dict[str, Any] = json.loads(cache.read_text())
    except (OSError, ValueError):
        cached = {}
    out: dict[str, Measured] = {}
    for entry in build_catalog(manifest, bundled=False).models:
        hit = cached.get(entry.name) if not remeasure else None
        found = None if remeasure else _from_bench(entry, bench)
        if found is None and hit and hit.get("version") == entry.version:
            found = Measured(warm_s=hit["warm_s"], init_s=hit["init_s"],
                             source=f"measured on this machine {hit.get('at', 'earlier')}, cached")
        if found is None:
            log(f"measuring {entry.name} on this machine (one thread) ...")
            found = measure_entry(entry)
            cached[entry.name] = {"version": entry.version, "warm_s": found.warm_s, "init_s": found.init_s,
                                  "at": time.strftime("%Y-%m-%d")}
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(cached, indent=2) + "\n")
        if entry.name in overrides:
            found = Measured(warm_s=overrides[entry.name] / 1000, init_s=found.init_s, source="--duration-ms")
        out[entry.name] = found
    return out

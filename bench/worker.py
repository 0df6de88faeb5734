"""Job worker throughput: a batch of jobs run vectorised (one inference call) vs one inference call per job.

Both sides run the worker's real runner code (validation, inference, per-job result slicing) on the example
model in this process; AWS calls are left out (moto is no load generator) and counted separately by
tests/functional/test_jobs.py::test_aws_calls_per_job_on_the_happy_path.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class OneCallPerJob:
    """The baseline: what a worker without vectorisation does."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        from inferstack.inference.validation import to_jsonable
        from inferstack.jobs.worker import Succeeded

        # what the vectorised runner does for a batch, done for each job: validate, run, JSON-safe lists
        return [Succeeded({k: to_jsonable(v) for k, v in self.predictor.run(self.predictor.validate(raw)).items()})
                for raw in inputs]


def _jobs(n: int, rows_per_job: int) -> list[dict[str, Any]]:
    rnd = random.Random(0)
    return [{"features": [[round(rnd.uniform(4, 8), 1) for _ in range(4)] for _ in range(rows_per_job)]}
            for _ in range(n)]


def run(rounds: int = 7) -> list[dict[str, Any]]:
    from inferstack.inference.session import Predictor
    from inferstack.jobs.worker import InProcessRunner
    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog

    catalog = build_catalog(load_manifest(ROOT / "inferstack.toml"), bundled=False)
    predictor = Predictor.load(catalog.models[0], Path("/"))
    rows = []
    for batch in (10, 100):
        jobs = _jobs(batch, rows_per_job=1)
        vectorised, baseline = InProcessRunner(predictor), OneCallPerJob(predictor)
        times: dict[str, list[float]] = {"vectorised": [], "per_job": []}
        for _ in range(rounds):
            for name, runner in (("vectorised", vectorised), ("per_job", baseline)):
                start = time.perf_counter()
                runner.run(jobs)
                times[name].append(time.perf_counter() - start)
        v = batch / statistics.median(times["vectorised"])
        b = batch / statistics.median(times["per_job"])
        rows.append({"figure": f"worker jobs/s, batch of {batch}", "value": v, "baselines": {"per-job": b},
                     "targets": {"per-job": 5.0}, "better": "higher",
                     "inference_calls_per_batch": vectorised.calls // rounds})
    return rows

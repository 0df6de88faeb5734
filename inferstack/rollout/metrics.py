"""One CloudWatch embedded-metric-format (EMF) line per predict or infer answer, by model and version.

`Requests`, `Errors` (answers with a 5xx status) and `Latency` (milliseconds in the function), with the
dimensions `Model` and `Version`: the rollout alarms (`inferstack_infra.constructs.rollout`) read the new
version's error rate and p99 latency from them alone, whichever tier and version answered. Lambda turns the line
into metrics; nothing is sent over the network. Written only where `$INFERSTACK_VERSION_METRICS` names the
namespace (the CDK app sets it); `inferstack dev` measures the same at its gateway instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TextIO

from inferstack import env

DIMENSIONS = ("Model", "Version")
_METRICS = [{"Name": "Requests", "Unit": "Count"}, {"Name": "Errors", "Unit": "Count"},
            {"Name": "Latency", "Unit": "Milliseconds"}]


def emf_line(namespace: str, model: str, version: str, *, status: int, latency_ms: float,
             variant: str | None = None, now_ms: int | None = None) -> str:
    document = {
        "_aws": {"Timestamp": now_ms if now_ms is not None else int(time.time() * 1000),
                 "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [list(DIMENSIONS)],
                                        "Metrics": _METRICS}]},
        "Model": model, "Version": version, "Requests": 1, "Errors": 1 if status >= 500 else 0,
        "Latency": round(latency_ms, 3), "Status": status,
    }
    if variant:
        document["Variant"] = variant
    return json.dumps(document, separators=(",", ":"))


class VersionMetrics:
    """Writes the line where a namespace is configured; does nothing otherwise."""

    def __init__(self, namespace: str | None = None, out: TextIO | None = None) -> None:
        self.namespace = namespace if namespace is not None else os.environ.get(env.VERSION_METRICS)
        self.out = out

    def record(self, model: str, version: str, *, status: int, started: float, variant: str | None = None) -> None:
        """`started`: `time.perf_counter()` when the request arrived."""
        if not self.namespace:
            return
        line = emf_line(self.namespace, model, version, status=status,
                        latency_ms=(time.perf_counter() - started) * 1000, variant=variant)
        print(line, file=self.out or sys.stdout, flush=True)

"""Package size: each function's code plus layers, unzipped, as Lambda counts it (limit 250 MB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
TARGETS: dict[str, float | None] = {"predict-iris": 100.0, "api": 40.0}


def run() -> list[dict[str, Any]]:
    from inferstack.manifest import load_manifest
    from inferstack.topology import functions
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import LAMBDA_MAX_UNZIPPED_BYTES, as_light, function_size

    example = load_manifest(ROOT / "inferstack.toml")
    catalog = build_catalog(example)
    rows = []
    # the heavy sentence embedder too, as the light function it would be (its handler's layer included)
    for manifest, keys in ((example, TARGETS), (as_light(example), {"predict-minilm": None})):
        for spec in functions(manifest):
            if spec.key not in keys:
                continue
            total = sum(function_size(spec, manifest, catalog))
            target_mb = keys[spec.key]
            baselines = {"Lambda limit": LAMBDA_MAX_UNZIPPED_BYTES / MB}
            targets = {"Lambda limit": 1.0}
            if target_mb is not None:
                baselines, targets = {"target": target_mb, **baselines}, {"target": 1.0}
            rows.append({"figure": f"{spec.key} package, unzipped (MB)", "value": total / MB,
                         "baselines": baselines, "targets": targets, "better": "lower"})
    return rows

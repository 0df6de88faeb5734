"""Package size: each function's code plus layers, unzipped, as Lambda counts it (limit 250 MB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
TARGETS = {"predict-iris": 100.0, "api": 40.0}


def run() -> list[dict[str, Any]]:
    from inferstack.manifest import load_manifest
    from inferstack.topology import functions
    from infra.catalog import build_catalog
    from infra.packaging import LAMBDA_MAX_UNZIPPED_BYTES, build_layer, dir_size, layer_names, stage_function

    manifest = load_manifest(ROOT / "inferstack.toml")
    catalog = build_catalog(manifest)
    rows = []
    for spec in functions(manifest):
        if spec.key not in TARGETS:
            continue
        total = dir_size(stage_function(spec, manifest, catalog)) + sum(
            dir_size(build_layer(n)) for n in layer_names(spec))
        target_mb = TARGETS[spec.key]
        rows.append({"figure": f"{spec.key} package, unzipped (MB)", "value": total / MB,
                     "baselines": {"target": target_mb, "Lambda limit": LAMBDA_MAX_UNZIPPED_BYTES / MB},
                     "targets": {"target": 1.0}, "better": "lower"})
    return rows

"""Compute the model catalog from the manifest: versions and signatures read from each ONNX graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

from inferstack.catalog import Catalog, CatalogEntry
from inferstack.inference.session import create_session, read_signature
from inferstack.manifest import Manifest


def file_version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def bundled_artifact(name: str) -> str:
    """Where a model file lies inside a function bundle, relative to its catalog."""
    return f"models/{name}.onnx"


def build_catalog(manifest: Manifest, *, bundled: bool = True) -> Catalog:
    """`bundled`: artifact paths as laid out in function bundles; otherwise absolute local paths."""
    entries = []
    for m in manifest.models:
        path = manifest.model_file(m)
        inputs, outputs = read_signature(create_session(path, threads=1))
        entries.append(CatalogEntry(
            name=m.name, tier=m.tier, version=m.version or file_version(path), inputs=inputs, outputs=outputs,
            artifact=bundled_artifact(m.name) if bundled else str(path.resolve()),
            allow_non_finite=m.allow_non_finite))
    return Catalog(models=entries)

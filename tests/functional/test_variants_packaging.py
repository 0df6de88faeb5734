"""A/B variants from the manifest to the bundle: the catalog's versions per variant, every file packaged, and the
predict function's entry point serving each by weight."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from inferstack.manifest import parse_manifest
from inferstack.topology import functions, predict_function_key
from inferstack_infra.catalog import build_catalog
from inferstack_infra.packaging import stage_function


def test_catalog_and_bundle_hold_every_variant(tmp_path: Path, iris_model: Path) -> None:
    tuned = onnx.load(str(iris_model))
    tuned.doc_string = "tuned"
    onnx.save(tuned, str(tmp_path / "tuned.onnx"))
    manifest = parse_manifest({"name": "ab", "models": [{"name": "iris", "tier": "light", "variants": [
        {"name": "control", "path": str(iris_model), "weight": 80},
        {"name": "tuned", "path": str(tmp_path / "tuned.onnx"), "weight": 20, "version": "tuned-1"}]}]},
        root=tmp_path)
    catalog = build_catalog(manifest)
    (entry,) = catalog.models
    assert [(v.name, v.weight) for v in entry.variants or []] == [("control", 80), ("tuned", 20)]
    control, tuned_entry = entry.variants or []
    assert tuned_entry.version == "tuned-1" and len(control.version) == 12
    assert entry.version not in {control.version, tuned_entry.version}  # the A/B test's own version
    # WHEN the predict function is bundled THEN both files are in it, where its catalog says
    spec = next(s for s in functions(manifest) if s.key == predict_function_key("iris"))
    bundle = stage_function(spec, manifest, catalog)
    bundled = json.loads((bundle / "catalog.json").read_text())["models"][0]
    for variant in bundled["variants"]:
        assert (bundle / variant["artifact"]).is_file()
    assert (bundle / bundled["variants"][1]["artifact"]).read_bytes() == (tmp_path / "tuned.onnx").read_bytes()

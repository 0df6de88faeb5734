"""A cascade with a custom acceptance rule (a Python file named in the manifest): loaded by the cascade's
runner, packaged with its function, checked at build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack import env
from inferstack.cascade.config import CascadeRuntime
from inferstack.cascade.wiring import build_runner
from inferstack.manifest import ManifestError, load_manifest
from inferstack.topology import functions
from inferstack_infra.catalog import build_catalog, bundled_rule
from inferstack_infra.packaging import stage_function

RULE = '''
import numpy as np


def accept(outputs):
    """Every row the first model calls a 3 goes on, whatever its confidence."""
    return np.asarray(outputs["label"]) != 3
'''


def write_manifest(d: Path, models: Path, rule: str = "rule.py") -> Path:
    (d / "rule.py").write_text(RULE)
    path = d / "inferstack.toml"
    path.write_text(f"""
[[models]]
name = "small"
path = "{models / 'digits-light.onnx'}"
tier = "light"
[[models]]
name = "big"
path = "{models / 'digits-heavy.onnx'}"
tier = "light"
[[cascades]]
name = "threes"
stages = ["small", "big"]
accept = {{ rule = "{rule}" }}
""")
    return path


def test_the_rule_decides_which_rows_go_on(tmp_path: Path, digits_models: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, digits_models))
    catalog = build_catalog(manifest, bundled=False)
    (spec,) = [f for f in functions(manifest) if f.kind == "cascade"]
    config = CascadeRuntime.model_validate_json(spec.environment("catalog.json", manifest)[env.CASCADE])
    runner, validator = build_runner(config, catalog, tmp_path)
    pixels = json.loads((digits_models / "digits-heldout.json").read_text())["pixels"][:120]
    arrays = validator.prepare({"pixels": pixels}).arrays
    first = validator.run(arrays)["label"]
    result = runner.run(arrays)
    threes = first == 3
    assert threes.any() and result.escalated == int(threes.sum())
    assert result.stage == ["big" if t else "small" for t in threes]


def test_the_rule_travels_in_the_cascade_functions_bundle(tmp_path: Path, digits_models: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, digits_models))
    catalog = build_catalog(manifest)
    for spec in functions(manifest):
        if spec.cascade:
            bundle = stage_function(spec, manifest, catalog)
            assert (bundle / bundled_rule("threes")).read_text() == RULE
            info: dict[str, Any] = json.loads((bundle / "catalog.json").read_text())["cascades"][0]
            assert info["rule"] == bundled_rule("threes") and info["min_confidence"] is None


def test_a_missing_rule_is_refused_naming_the_field(tmp_path: Path, digits_models: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, digits_models, rule="nope.py"))
    with pytest.raises(ManifestError) as caught:
        build_catalog(manifest, bundled=False)
    assert caught.value.problems[0][0] == "cascades[0] (threes).accept.rule"

"""Cascades, fallbacks and caches in the manifest: errors name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import ManifestError, parse_manifest


def manifest(**extra: Any) -> dict[str, Any]:
    return {"models": [
        {"name": "small", "path": "s.onnx", "tier": "light", "cache": {"ttl_s": 60}},
        {"name": "big", "path": "b.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge", "fallback": "small",
         "budget_ms": 500, "circuit": {"failures": 3}},
    ], **extra}


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(raw, root=Path("."), check_files=False)
    return caught.value.problems


def test_a_valid_cascade_and_fallback_load() -> None:
    m = parse_manifest(manifest(cascades=[{"name": "c", "stages": ["small", "big"],
                                           "accept": {"min_confidence": 0.8}}]), check_files=False)
    assert m.cascades[0].accept.output == "probabilities" and m.model("big").fallback == "small"
    assert m.model("small").cache is not None and m.model("small").cache.uses_table(heavy=False) is False


@pytest.mark.parametrize(("cascade", "needle"), [
    ({"name": "c", "stages": ["small"], "accept": {"min_confidence": 0.8}}, "at least two stages"),
    ({"name": "c", "stages": ["small", "nope"], "accept": {"min_confidence": 0.8}}, "nope are not models"),
    ({"name": "c", "stages": ["big", "small"], "accept": {"min_confidence": 0.8}}, "must be a light model"),
    ({"name": "c", "stages": ["small", "big"], "accept": {"min_confidence": 1.5}}, "less than or equal to 1"),
])
def test_bad_cascades_are_refused(cascade: dict[str, Any], needle: str) -> None:
    found = problems(manifest(cascades=[cascade]))
    assert any(needle in what for _, what in found), found
    assert all(where.startswith("cascades") or where == "(top level)" for where, _ in found)


def test_a_fallback_must_be_a_light_model() -> None:
    raw = manifest()
    raw["models"][1]["fallback"] = "big"
    assert any("fallback 'big' must name a light model" in what for _, what in problems(raw))


def test_fallback_and_circuit_only_apply_to_heavy_models() -> None:
    raw = manifest()
    raw["models"][0]["fallback"] = "small"
    assert any("only apply to tier = 'heavy'" in what for _, what in problems(raw))


def test_cache_settings_are_bounded() -> None:
    raw = manifest()
    raw["models"][0]["cache"] = {"ttl_s": 0}
    found = problems(raw)
    assert found[0][0] == "models[0] (small).cache.ttl_s"


@pytest.mark.parametrize("accept", [{}, {"min_confidence": 0.5, "rule": "r.py"}])
def test_a_cascade_accepts_by_threshold_or_by_rule_one_of_them(accept: dict[str, Any]) -> None:
    found = problems(manifest(cascades=[{"name": "c", "stages": ["small", "big"], "accept": accept}]))
    assert any("min_confidence" in what and "rule" in what for _, what in found), found

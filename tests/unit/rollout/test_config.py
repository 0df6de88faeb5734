"""The manifest's `rollout` and `variants`: defaults, and errors that name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import ManifestError, parse_manifest
from tests.conftest import ROOT


def light(**overrides: Any) -> dict[str, Any]:
    return {"name": "iris", "path": "models/iris.onnx", "tier": "light", **overrides}


def problems(model: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_manifest({"models": [model]}, root=ROOT, source="test.toml")
    return info.value.problems


def test_default_rollout_is_a_10_percent_canary_for_5_minutes(iris_model: Path) -> None:
    model = parse_manifest({"models": [light(latency_budget_ms=150)]}, root=ROOT).model("iris")
    assert (model.rollout.strategy, model.rollout.percent, model.rollout.interval_min) == ("canary", 10, 5)
    # the alarms default to 1 % errors and the model's latency budget (else 80 % of its timeout)
    assert model.rollout.thresholds(latency_budget_ms=150, timeout_s=10) == {"error_rate": 0.01, "p99_ms": 150.0}
    assert model.rollout.thresholds(latency_budget_ms=None, timeout_s=10)["p99_ms"] == 8000.0


def test_explicit_alarms_replace_the_defaults(iris_model: Path) -> None:
    rollout = {"strategy": "linear", "percent": 25, "interval_min": 2,
               "alarms": [{"metric": "p99_ms", "threshold": 80}]}
    model = parse_manifest({"models": [light(rollout=rollout)]}, root=ROOT).model("iris")
    assert model.rollout.thresholds(latency_budget_ms=None, timeout_s=10) == {"p99_ms": 80.0}


@pytest.mark.parametrize(("rollout", "where", "says"), [
    ({"strategy": "blue-green"}, "models[0] (iris).rollout.strategy", "'canary', 'linear' or 'all-at-once'"),
    ({"percent": 100}, "models[0] (iris).rollout.percent", "less than or equal to 99"),
    ({"strategy": "all-at-once", "percent": 10}, "models[0] (iris).rollout", "remove percent"),
    ({"alarms": [{"metric": "p95_ms", "threshold": 1}]}, "models[0] (iris).rollout.alarms[0].metric", "p99_ms"),
    ({"alarms": [{"metric": "error_rate", "threshold": 5}]}, "models[0] (iris).rollout.alarms[0]", "0.01 is 1 %"),
    ({"alarms": [{"metric": "p99_ms", "threshold": 5}, {"metric": "p99_ms", "threshold": 9}]},
     "models[0] (iris).rollout", "p99_ms appears more than once"),
    ({"interval": 5}, "models[0] (iris).rollout.interval", "unknown key"),
])
def test_rollout_errors_name_the_field(iris_model: Path, rollout: dict[str, Any], where: str, says: str) -> None:
    ((found_where, found_says),) = problems(light(rollout=rollout))
    assert found_where == where and says in found_says


def variants(*weights: int) -> list[dict[str, Any]]:
    return [{"name": f"v{i}", "path": "models/iris.onnx", "weight": w} for i, w in enumerate(weights)]


def test_variants_replace_path(iris_model: Path) -> None:
    manifest = parse_manifest({"models": [{"name": "iris", "tier": "light", "variants": variants(70, 30)}]},
                              root=ROOT)
    model = manifest.model("iris")
    assert [v.weight for v in model.variants or []] == [70, 30]
    assert manifest.model_file(model) == iris_model  # the first variant's file gives the signature
    assert set(manifest.variant_files(model)) == {"v0", "v1"}


@pytest.mark.parametrize(("model", "where", "says"), [
    ({"variants": variants(70, 20)}, "models[0] (iris).variants", "must sum to 100, not 90"),
    ({"variants": [{"name": "a", "path": "models/iris.onnx", "weight": 99}]}, "models[0] (iris).variants",
     "at least two variants"),
    ({"variants": variants(50, 50), "path": "models/iris.onnx"}, "models[0] (iris)", "remove path"),
    ({}, "models[0] (iris)", "set either path"),
    ({"variants": [{"name": "B", "path": "models/iris.onnx", "weight": 50}, *variants(50)]},
     "models[0] (iris).variants[0] (B).name", "pattern"),
    ({"variants": [{"name": "a", "path": "models/nope.onnx", "weight": 50}, *variants(50)]},
     "models[0] (iris).variants[0] (a).path", "does not exist"),
])
def test_variant_errors_name_the_field(iris_model: Path, model: dict[str, Any], where: str, says: str) -> None:
    ((found_where, found_says),) = problems({"name": "iris", "tier": "light", **model})
    assert found_where == where and says in found_says


def test_heavy_variants_need_an_always_on_endpoint(iris_model: Path) -> None:
    heavy = {"name": "big", "tier": "heavy", "instance_type": "ml.g5.xlarge", "variants": variants(50, 50)}
    assert parse_manifest({"models": [heavy]}, root=ROOT).model("big").variants  # production variants
    ((where, says),) = problems({**heavy, "instances": {"min": 0, "max": 2}})
    assert where == "models[0] (big)" and "instances.min >= 1" in says


def test_the_readme_snippets_are_valid_manifests() -> None:
    import re
    import tomllib

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Shipping a new model version"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block in blocks:
        parse_manifest(tomllib.loads(block), root=ROOT, check_files=False)


def test_a_cascade_stage_has_one_file_not_variants() -> None:
    raw = {"models": [
        {"name": "small", "tier": "light", "variants": variants(50, 50)},
        {"name": "big", "path": "b.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge"}],
        "cascades": [{"name": "c", "stages": ["small", "big"], "accept": {"min_confidence": 0.8}}]}
    with pytest.raises(ManifestError) as caught:
        parse_manifest(raw, root=ROOT, check_files=False)
    ((where, says),) = caught.value.problems
    assert where == "(top level)" and "small has A/B variants" in says

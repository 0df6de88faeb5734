from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferstack.manifest import ManifestError, load_manifest, parse_manifest
from tests.conftest import EXAMPLE_MANIFEST, ROOT


def light(**overrides: Any) -> dict[str, Any]:
    return {"name": "iris", "path": "models/iris.onnx", "tier": "light", **overrides}


def parse(raw: dict[str, Any]) -> Any:
    return parse_manifest(raw, root=ROOT, source="test.toml")


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse(raw)
    return info.value.problems


def test_example_manifest_is_valid(iris_model: Path) -> None:
    # GIVEN the repository's example manifest WHEN it is loaded THEN its models and plans are read as written
    manifest = load_manifest(EXAMPLE_MANIFEST)
    iris = manifest.model("iris")
    assert iris.tier == "light"
    assert iris.cold_start.mode == "provisioned"
    assert (iris.cold_start.min_instances, iris.cold_start.max_instances) == (1, 20)
    assert manifest.api.plans[0].name == "free"
    assert manifest.model_file(iris) == iris_model


def test_unknown_key_is_named_with_its_path(iris_model: Path) -> None:
    found = problems({"models": [light(memroy_mb=512)]})
    assert found == [("models[0] (iris).memroy_mb", "unknown key: remove it or check its spelling")]


def test_wrong_type_names_field_and_expectation(iris_model: Path) -> None:
    found = problems({"models": [light(memory_mb="lots")]})
    assert found[0][0] == "models[0] (iris).memory_mb"
    assert "integer" in found[0][1]


def test_out_of_range_memory(iris_model: Path) -> None:
    found = problems({"models": [light(memory_mb=20000)]})
    assert found[0][0] == "models[0] (iris).memory_mb"
    assert "10240" in found[0][1]


def test_duplicate_model_names(iris_model: Path) -> None:
    found = problems({"models": [light(), light()]})
    assert found[0][0] == "models"
    assert "iris appears more than once" in found[0][1]


def test_missing_model_file() -> None:
    found = problems({"models": [light(path="models/nope.onnx")]})
    assert found[0][0] == "models[0] (iris).path"
    assert "does not exist" in found[0][1] and "make models" in found[0][1]


def test_heavy_field_on_light_model(iris_model: Path) -> None:
    found = problems({"models": [light(instance_type="ml.g5.xlarge")]})
    assert found[0][0] == "models[0] (iris)"
    assert "instance_type only apply to tier = 'heavy'" in found[0][1]


def test_light_field_on_heavy_model(iris_model: Path) -> None:
    found = problems({"models": [light(tier="heavy", instance_type="ml.g5.xlarge", memory_mb=2048)]})
    assert "memory_mb only apply to tier = 'light'" in found[0][1]


def test_snapstart_with_provisioned_concurrency_is_rejected(iris_model: Path) -> None:
    found = problems({"models": [light(cold_start={"mode": "snapstart", "min": 2})]})
    assert found[0][0] == "models[0] (iris).cold_start"
    assert "SnapStart cannot be combined with provisioned concurrency" in found[0][1]


def test_provisioned_max_below_min(iris_model: Path) -> None:
    found = problems({"models": [light(cold_start={"mode": "provisioned", "min": 5, "max": 2})]})
    assert "max (2) must be >= min (5)" in found[0][1]


def test_reserved_concurrency_must_cover_provisioned_max(iris_model: Path) -> None:
    found = problems({"models": [light(reserved_concurrency=5, cold_start={"mode": "provisioned", "max": 10})]})
    assert "reserved_concurrency (5) must be at least cold_start.max (10)" in found[0][1]


def test_bad_model_name(iris_model: Path) -> None:
    found = problems({"models": [light(name="Iris Model")]})
    assert found[0][0] == "models[0] (Iris Model).name"


def test_duplicate_plan_names(iris_model: Path) -> None:
    plan = {"name": "free", "throttle": {"rate": 1, "burst": 1}}
    found = problems({"api": {"plans": [plan, plan]}, "models": [light()]})
    assert found[0][0] == "api.plans"


def test_every_problem_is_reported_at_once(iris_model: Path) -> None:
    found = problems({"models": [light(memory_mb=1, timeout_s=60, extra=True)]})
    assert {where for where, _ in found} == {"models[0] (iris).memory_mb", "models[0] (iris).timeout_s",
                                             "models[0] (iris).extra"}


def test_not_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[api\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(bad)
    assert info.value.problems[0][0] == "(syntax)"
    assert "bad.toml is not a valid inferstack manifest" in str(info.value)


def test_heavy_instance_type_must_have_a_gpu(iris_model: Path) -> None:
    found = problems({"models": [light(tier="heavy", instance_type="ml.m5.xlarge")]})
    assert "not a SageMaker GPU instance" in found[0][1]
    ok = parse({"models": [light(tier="heavy", instance_type="ml.g6.2xlarge")]})
    assert ok.models[0].instance_type == "ml.g6.2xlarge"


def test_heavy_model_needs_an_instance_type(iris_model: Path) -> None:
    found = problems({"models": [light(tier="heavy")]})
    assert "needs instance_type" in found[0][1]


def test_heavy_instances_may_scale_to_zero_but_not_below(iris_model: Path) -> None:
    # GIVEN instances.min = 0 on a heavy model THEN it is accepted and marked as scaling to zero
    heavy = {"name": "big", "path": "models/iris.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge"}
    manifest = parse({"models": [{**heavy, "instances": {"min": 0, "max": 3}}]})
    assert manifest.model("big").instances.scales_to_zero
    assert not parse({"models": [heavy]}).model("big").instances.scales_to_zero
    # AND a negative minimum, or a maximum of zero, is refused with the field named
    found = problems({"models": [{**heavy, "instances": {"min": -1, "max": 0}}]})
    assert [where for where, _ in found] == ["models[0] (big).instances.min", "models[0] (big).instances.max"]


def test_latency_budget_is_a_positive_number_of_milliseconds(iris_model: Path) -> None:
    assert parse({"models": [light(latency_budget_ms=150)]}).model("iris").latency_budget_ms == 150
    found = problems({"models": [light(latency_budget_ms=0)]})
    assert found[0][0] == "models[0] (iris).latency_budget_ms"

"""`-c stage=NAME` (`inferstack deploy --stage NAME`): the same project once more, every name staged."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from inferstack.manifest import ManifestError
from inferstack_infra.app import build_app
from inferstack_infra.stages import staged_name

pytestmark = pytest.mark.infra


def test_a_stage_renames_the_stack_and_every_resource(tmp_path: Path, iris_model: Path) -> None:
    # GIVEN a one-model project WHEN it is synthesized with -c stage=dev
    manifest = tmp_path / "inferstack.toml"
    manifest.write_text(f'name = "shop"\n[[models]]\nname = "iris"\npath = "{iris_model}"\ntier = "light"\n')
    _, stack = build_app(manifest, app=App(outdir=str(tmp_path / "out"), context={"stage": "dev"}))
    # THEN the stack, the API, its usage plan and key, and the functions' service name carry shop-dev
    assert stack.stack_name == "shop-dev"
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::ApiGateway::RestApi", {"Name": "shop-dev"})
    template.has_resource_properties("AWS::ApiGateway::UsagePlan", {"UsagePlanName": "shop-dev-default"})
    template.has_resource_properties("AWS::ApiGateway::ApiKey", {"Name": "shop-dev-default-key"})
    services = {f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
                for f in template.find_resources("AWS::Lambda::Function").values()
                if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})}
    assert services == {"shop-dev"}  # logs and metrics of each stage apart


@pytest.mark.parametrize(("stage", "expected"), [(None, "shop"), ("", "shop"), ("prod", "shop-prod"),
                                                 ("eu-2", "shop-eu-2")])
def test_staged_names(stage: str | None, expected: str) -> None:
    assert staged_name("shop", stage) == expected


@pytest.mark.parametrize("stage", ["Prod", "-x", "a_b", "x" * 21])
def test_a_bad_stage_is_refused_naming_it(stage: str) -> None:
    with pytest.raises(ManifestError) as info:
        staged_name("shop", stage)
    assert info.value.problems[0][0] == "stage"


def test_a_stage_that_makes_the_name_too_long_is_refused() -> None:
    with pytest.raises(ManifestError, match="longer than 64"):
        staged_name("s" * 60, "prod")

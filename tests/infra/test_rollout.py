"""Rollouts in the synthesized template: CodeDeploy on the light models' aliases, SageMaker blue/green on the
heavy endpoints, both with alarms on the new version alone and automatic rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest

from inferstack.manifest import load_manifest
from inferstack_infra.catalog import build_catalog
from tests.conftest import EXAMPLE_MANIFEST, ROOT
from tests.infra.conftest import Synthesized, synthesize

MLP = ROOT / "models" / "mlp.onnx"


def resources(s: Synthesized, kind: str) -> dict[str, Any]:
    return dict(s.template.find_resources(kind))


def rollout_alarms(s: Synthesized, model: str) -> dict[str, dict[str, Any]]:
    """The rollout alarms of a model, by the metric their expression returns."""
    out = {}
    for key, alarm in resources(s, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        dims = [d for q in props.get("Metrics", []) if "MetricStat" in q
                for d in q["MetricStat"]["Metric"]["Dimensions"]]
        if {"Name": "model", "Value": model} in dims and key.startswith("Rollouts"):
            out["error_rate" if "ErrorRate" in key else "p99_ms"] = {"key": key, **props}
    return out


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Synthesized:
    d = tmp_path_factory.mktemp("cdk-linear")
    model = onnx.load(str(MLP))
    model.doc_string = "tuned"
    tuned = d / "mlp-tuned.onnx"
    onnx.save(model, str(tuned))
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "linear"
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
[models.rollout]
strategy = "linear"
percent = 25
interval_min = 2
alarms = [{{ metric = "error_rate", threshold = 0.02 }}]
[[models]]
name = "mlp"
path = "{MLP}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
instances = {{ min = 2, max = 4 }}
rollout = {{ strategy = "linear", percent = 20, interval_min = 3 }}
[[models]]
name = "mlp-ab"
tier = "heavy"
instance_type = "ml.g5.xlarge"
instances = {{ min = 1, max = 3, target_invocations_per_instance = 50 }}
variants = [{{ name = "control", path = "{MLP}", weight = 80 }}, {{ name = "tuned", path = "{tuned}", weight = 20 }}]
""")
    return synthesize(manifest, d / "out")


def test_light_model_deploys_through_codedeploy_canary_on_its_live_alias(example: Synthesized) -> None:
    # GIVEN the example's iris (default rollout: canary 10 % for 5 minutes)
    t = example.template
    t.has_resource_properties("AWS::CodeDeploy::Application", {"ComputePlatform": "Lambda",
                                                               "ApplicationName": "inferstack-example-models"})
    t.has_resource_properties("AWS::CodeDeploy::DeploymentConfig", {"TrafficRoutingConfig": {
        "Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryPercentage": 10, "CanaryInterval": 5}}})
    groups = {g["Properties"]["DeploymentGroupName"]: g["Properties"]
              for g in resources(example, "AWS::CodeDeploy::DeploymentGroup").values()}
    # THEN predict and the job worker each have a deployment group, with the same config and alarms, rolling back
    assert set(groups) == {"inferstack-example-iris-predict", "inferstack-example-iris-worker"}
    alarms = rollout_alarms(example, "iris")
    for group in groups.values():
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert set(group["AutoRollbackConfiguration"]["Events"]) == {
            "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"}
        assert group["AlarmConfiguration"]["Enabled"] is True
        assert {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]} == {a["key"] for a in alarms.values()}
        assert group["DeploymentStyle"] == {"DeploymentOption": "WITH_TRAFFIC_CONTROL", "DeploymentType": "BLUE_GREEN"}
    # AND CloudFormation hands the alias to CodeDeploy, which keeps its provisioned concurrency
    (alias,) = [a for k, a in resources(example, "AWS::Lambda::Alias").items() if k.startswith("PredictIris")]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"].startswith(
        "RolloutsIrisPredict")
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 1}
    # the alarms watch the new version before the alias update starts the deployment
    assert set(alias["DependsOn"]) >= {a["key"] for a in alarms.values()}
    (worker_alias,) = [a for k, a in resources(example, "AWS::Lambda::Alias").items() if k.startswith("WorkerIris")]
    assert worker_alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"].startswith(
        "RolloutsIrisWorker")


def test_alarms_watch_the_new_version_alone_with_the_manifest_thresholds(example: Synthesized) -> None:
    version = build_catalog(load_manifest(EXAMPLE_MANIFEST)).get("iris").version  # type: ignore[union-attr]
    alarms = rollout_alarms(example, "iris")
    assert set(alarms) == {"error_rate", "p99_ms"}
    # defaults: 1 % errors, p99 at the model's latency budget (100 ms in the example), judged on 20 answers
    assert alarms["error_rate"]["Threshold"] == 0.01 and alarms["p99_ms"]["Threshold"] == 100
    for alarm in alarms.values():
        stats = {q["Id"]: q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q}
        expression = next(q["Expression"] for q in alarm["Metrics"] if "Expression" in q)
        assert ">= 20" in expression and alarm["EvaluationPeriods"] == 1
        for stat in (stats["requests"], stats.get("errors") or stats["latency"]):
            assert stat["Period"] == 60 and stat["Metric"]["Namespace"] == "inferstack"
            assert {"Name": "version", "Value": version} in stat["Metric"]["Dimensions"]
    assert alarms["p99_ms"]["Metrics"][-1]["MetricStat"]["Stat"] == "p99"
    # a crash of the new function version (no answer at all) counts as an error too
    crashes = next(q["MetricStat"]["Metric"] for q in alarms["error_rate"]["Metrics"] if q["Id"] == "crashes")
    assert crashes["Namespace"] == "AWS/Lambda" and crashes["MetricName"] == "Errors"
    executed = next(d["Value"] for d in crashes["Dimensions"] if d["Name"] == "ExecutedVersion")
    assert executed["Fn::GetAtt"][0].startswith("PredictIrisFunctionCurrentVersion")


def test_heavy_endpoint_blue_green_canary_with_rollback_alarms(example: Synthesized) -> None:
    (endpoint,) = resources(example, "AWS::SageMaker::Endpoint").values()
    config = endpoint["Properties"]["DeploymentConfig"]
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 300}
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 300
    alarms = rollout_alarms(example, "minilm")
    assert {a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]} == \
        {a["key"] for a in alarms.values()}
    assert alarms["p99_ms"]["Threshold"] == 300  # minilm's latency budget


def test_linear_rollouts_and_explicit_alarms(linear: Synthesized) -> None:
    linear.template.has_resource_properties("AWS::CodeDeploy::DeploymentConfig", {"TrafficRoutingConfig": {
        "Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearPercentage": 25, "LinearInterval": 2}}})
    alarms = rollout_alarms(linear, "iris")
    assert set(alarms) == {"error_rate"} and alarms["error_rate"]["Threshold"] == 0.02
    endpoint = next(e for e in resources(linear, "AWS::SageMaker::Endpoint").values()
                    if e["Properties"]["EndpointName"] == "linear-mlp")
    assert endpoint["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}, "WaitIntervalInSeconds": 180}


def test_cfn_lint_is_clean(linear: Synthesized) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(linear.template_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_codedeploy_roles_are_acknowledged_with_a_reason(example: Synthesized) -> None:
    roles = [k for k in resources(example, "AWS::IAM::Role") if k.startswith("RolloutsIris")]
    assert len(roles) == 2  # app.synth() ran cdk-nag: their managed policy is acknowledged, nothing else is open
    assert json.dumps(resources(example, "AWS::IAM::Role")[roles[0]]).count("AWSCodeDeployRoleForLambdaLimited") == 1


def test_heavy_ab_variants_are_weighted_production_variants_each_autoscaled(linear: Synthesized) -> None:
    configs = [c["Properties"]["ProductionVariants"] for c in resources(linear, "AWS::SageMaker::EndpointConfig")
               .values() if len(c["Properties"]["ProductionVariants"]) == 2]
    (variants,) = configs
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in variants] == [("control", 80), ("tuned", 20)]
    # each variant runs its own model (its own archive: its own version), on the manifest's instances
    assert len({json.dumps(v["ModelName"]) for v in variants}) == 2
    assert all(v["InstanceType"] == "ml.g5.xlarge" and v["InitialInstanceCount"] == 1 for v in variants)
    targets = {t["Properties"]["ResourceId"]: t["Properties"]
               for t in resources(linear, "AWS::ApplicationAutoScaling::ScalableTarget").values()}
    for name in ("control", "tuned"):
        target = targets[f"endpoint/linear-mlp-ab/variant/{name}"]
        assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    policies = [p["Properties"] for p in resources(linear, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
                if p["Properties"].get("TargetTrackingScalingPolicyConfiguration", {}).get("TargetValue") == 50]
    assert len(policies) == 2
    dims = [json.dumps(a["Properties"].get("Dimensions")) for a in resources(linear, "AWS::CloudWatch::Alarm").values()]
    assert sum('"tuned"' in d for d in dims) == 2  # its own latency and 5XX alarms

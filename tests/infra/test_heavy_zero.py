"""A heavy model with `instances.min = 0` in the synthesized template: an inference component that scales to
zero copies (and its endpoint to zero instances) and out again on the first call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.conftest import ROOT
from tests.infra.conftest import Synthesized, synthesize

MLP = ROOT / "models" / "mlp.onnx"
COMPONENT = "zero-mlp-ic"


@pytest.fixture(scope="module")
def zero(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Synthesized:
    if not MLP.exists():
        pytest.fail("models/mlp.onnx is missing: run `make models`")
    d = tmp_path_factory.mktemp("cdk-zero")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "zero"
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
[[models]]
name = "mlp"
path = "{MLP}"
tier = "heavy"
instance_type = "ml.g6.xlarge"
instances = {{ min = 0, max = 3, target_invocations_per_instance = 120 }}
""")
    # synthesis runs cdk-nag's AwsSolutions pack and fails on any unacknowledged finding
    return synthesize(manifest, d / "out")


def resources(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def test_endpoint_variant_hosts_components_with_managed_instance_scaling_down_to_zero(zero: Synthesized) -> None:
    (config,) = resources(zero, "AWS::SageMaker::EndpointConfig").values()
    props = config["Properties"]
    assert "ExecutionRoleArn" in props and props["EnableNetworkIsolation"] is True
    (variant,) = props["ProductionVariants"]
    assert "ModelName" not in variant  # the model is the inference component's, not the variant's
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 3}
    assert variant["InstanceType"] == "ml.g6.xlarge" and variant["VariantName"] == "AllTraffic"
    zero.template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "zero-mlp"})


def test_the_model_is_an_inference_component_of_one_gpu(zero: Synthesized) -> None:
    (component,) = resources(zero, "AWS::SageMaker::InferenceComponent").values()
    props = component["Properties"]
    assert props["InferenceComponentName"] == COMPONENT and props["VariantName"] == "AllTraffic"
    assert props["EndpointName"]["Fn::GetAtt"][1] == "EndpointName"
    spec = props["Specification"]
    assert spec["ModelName"]["Fn::GetAtt"][1] == "ModelName"
    assert spec["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"] == 1
    assert props["RuntimeConfig"] == {"CopyCount": 1}  # a deployment proves the model loads
    (model,) = resources(zero, "AWS::SageMaker::Model").values()
    assert model["Properties"]["EnableNetworkIsolation"] is True


def test_copies_scale_in_to_zero_by_target_tracking(zero: Synthesized) -> None:
    zero.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
        "ResourceId": f"inference-component/{COMPONENT}", "MinCapacity": 0, "MaxCapacity": 3})
    zero.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "TargetValue": 120, "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"}})})


def test_a_call_at_zero_copies_scales_out_through_the_no_capacity_alarm(zero: Synthesized) -> None:
    (step_id, step), = [(k, p) for k, p in resources(zero, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
                        if p["Properties"]["PolicyType"] == "StepScaling"]
    config = step["Properties"]["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ChangeInCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    assert config["Cooldown"] >= 300  # one copy per wake, not one a minute while callers keep knocking
    ((alarm_id, alarm),) = [(k, a["Properties"]) for k, a in resources(zero, "AWS::CloudWatch::Alarm").items()
                            if a["Properties"].get("MetricName") == "NoCapacityInvocationFailures"]
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": COMPONENT}]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == 1 and alarm["AlarmActions"][0] == {"Ref": step_id}
    # the alarm topic hears it too (as every alarm), but it pages no one: it is in no composite alarm
    (topic,) = resources(zero, "AWS::SNS::Topic")
    assert alarm["AlarmActions"][1:] == [{"Ref": topic}]
    composites = json.dumps(resources(zero, "AWS::CloudWatch::CompositeAlarm"))
    assert alarm_id not in composites and any(k in composites for k in resources(zero, "AWS::CloudWatch::Alarm"))


def test_endpoint_alarms_watch_the_component(zero: Synthesized) -> None:
    dims = {a["Properties"]["MetricName"]: a["Properties"]["Dimensions"]
            for a in resources(zero, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Namespace") == "AWS/SageMaker"}
    assert set(dims) == {"ModelLatency", "Invocation5XXErrors", "NoCapacityInvocationFailures"}
    assert all(d == [{"Name": "InferenceComponentName", "Value": COMPONENT}] for d in dims.values())


def test_functions_name_the_component_and_may_invoke_only_it(zero: Synthesized) -> None:
    named = {k: f["Properties"] for k, f in resources(zero, "AWS::Lambda::Function").items()
             if f["Properties"]["Environment"]["Variables"].get("INFERSTACK_MODEL") == "mlp"}
    # the predict proxy and the worker call the endpoint; the batch function (Batch Transform's plan and finish
    # steps) never does, so it names no component
    functions = [f for k, f in named.items() if k.startswith(("PredictMlp", "WorkerMlp"))]
    assert len(functions) == 2 and len(named) == 3
    assert all(f["Environment"]["Variables"]["INFERSTACK_INFERENCE_COMPONENT"] == COMPONENT for f in functions)
    (batch,) = [f for k, f in named.items() if k.startswith("BatchMlp")]
    assert "INFERSTACK_INFERENCE_COMPONENT" not in batch["Environment"]["Variables"]
    grants = [st for k, p in resources(zero, "AWS::IAM::Policy").items() if k.startswith(("PredictMlp", "WorkerMlp"))
              for st in p["Properties"]["PolicyDocument"]["Statement"] if st["Action"] == "sagemaker:InvokeEndpoint"]
    assert len(grants) == 2
    for grant in grants:
        targets = json.dumps(grant["Resource"])
        assert "HeavyMlpEndpoint" in targets and "InferenceComponentArn" in targets and '"*"' not in targets


def test_the_worker_may_hand_jobs_back_to_its_own_queue(zero: Synthesized) -> None:
    (worker,) = [p["Properties"]["PolicyDocument"]["Statement"] for k, p in resources(zero, "AWS::IAM::Policy").items()
                 if k.startswith("WorkerMlp")]
    sends = [json.dumps(st["Resource"]) for st in worker if "sqs:SendMessage" in st["Action"]]
    assert any("JobsJobsMlp" in s and "Dlq" not in s for s in sends), sends
    (iris_worker,) = [p["Properties"]["PolicyDocument"]["Statement"]
                      for k, p in resources(zero, "AWS::IAM::Policy").items() if k.startswith("WorkerIris")]
    assert not any("JobsJobsIris" in json.dumps(st["Resource"]) for st in iris_worker
                   if "sqs:SendMessage" in st["Action"])  # an always-on model's worker never needs to


def test_cfn_lint_is_clean(zero: Synthesized) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(zero.template_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_cost_estimate_counts_what_bills_by_the_month(zero: Synthesized) -> None:
    from inferstack.manifest import load_manifest
    from inferstack_infra.cost.inventory import target_tracking_policies, template_alarms
    from tests.infra.test_cost_inventory import counts

    manifest = load_manifest(zero.outdir.parent / "inferstack.toml")
    assert counts(zero) == (sum(template_alarms(manifest).values()),
                            sum(target_tracking_policies(manifest).values()), 1)


def test_the_component_rolls_out_batch_by_batch_with_rollback_alarms(zero: Synthesized) -> None:
    # the default rollout (10 %, 5 minutes) as the inference component's rolling update
    (component,) = zero.template.find_resources("AWS::SageMaker::InferenceComponent").values()
    config = component["Properties"]["DeploymentConfig"]
    assert config["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 10}
    assert config["RollingUpdatePolicy"]["WaitIntervalInSeconds"] == 300
    names = {a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]}
    assert names and all(n.startswith("RolloutsMlp") for n in names)

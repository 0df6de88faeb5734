"""Assertions on the synthesized CloudFormation template (no AWS account needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match
from cdk_nag import AwsSolutionsChecks

from inferstack.api.problems import GATEWAY_RESPONSES
from tests.infra.conftest import Synthesized


def resources(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def predict_function(s: Synthesized, model: str = "iris") -> dict[str, Any]:
    (fn,) = [r for r in resources(s, "AWS::Lambda::Function").values()
             if r["Properties"]["Handler"] == "inferstack.functions.predict.handler.handler"
             and r["Properties"]["Environment"]["Variables"]["INFERSTACK_MODEL"] == model]
    return fn


def test_functions_are_arm64_python314_with_manifest_memory(example: Synthesized) -> None:
    fns = resources(example, "AWS::Lambda::Function")
    handlers = sorted(f["Properties"]["Handler"].split(".")[2] for f in fns.values())
    assert handlers == ["api", "batch", "batch", "deadletter", "heavy", "predict", "webhooks", "worker", "worker"]
    for fn in fns.values():
        assert fn["Properties"]["Architectures"] == ["arm64"]
        assert fn["Properties"]["Runtime"] == "python3.14"
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}
    props = predict_function(example)["Properties"]
    assert props["MemorySize"] == 1024 and props["Timeout"] == 10
    assert props["ReservedConcurrentExecutions"] == 50
    assert props["Environment"]["Variables"]["INFERSTACK_MODEL"] == "iris"
    assert len(props["Layers"]) == 2  # base + inference


def test_layers_target_lambda_arm64(example: Synthesized) -> None:
    layers = resources(example, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2
    for layer in layers.values():
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.14"]


def test_live_alias_with_provisioned_concurrency_and_target_tracking(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 1}})
    example.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "MinCapacity": 1, "MaxCapacity": 20, "ScalableDimension": "lambda:function:ProvisionedConcurrency",
        "ServiceNamespace": "lambda"})
    example.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "TargetValue": 0.7,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}})})


def test_api_gateway_invokes_the_live_alias(example: Synthesized) -> None:
    methods = resources(example, "AWS::ApiGateway::Method")
    uris = json.dumps([m["Properties"]["Integration"]["Uri"] for m in methods.values()])
    aliases = [k for k in resources(example, "AWS::Lambda::Alias") if k.startswith(("Api", "Predict"))]
    assert len(aliases) == 3 and all(alias in uris for alias in aliases)  # api, predict-iris, predict-minilm
    for m in methods.values():
        assert m["Properties"]["Integration"]["Type"] == "AWS_PROXY"


def test_snapstart_variant_has_no_provisioned_concurrency(snapstart: Synthesized) -> None:
    assert predict_function(snapstart)["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    for alias in resources(snapstart, "AWS::Lambda::Alias").values():
        assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert resources(snapstart, "AWS::ApplicationAutoScaling::ScalableTarget") == {}


def test_regional_rest_api_with_stage_throttling_and_access_logs(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::ApiGateway::RestApi", {
        "EndpointConfiguration": {"Types": ["REGIONAL"]}, "ApiKeySourceType": "HEADER"})
    (stage,) = resources(example, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "prod" and props["TracingEnabled"] is True
    assert "DestinationArn" in props["AccessLogSetting"] and "$context.requestId" in props["AccessLogSetting"]["Format"]
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in props["MethodSettings"]}
    stage_default = settings[("/*", "*")]
    assert stage_default["ThrottlingRateLimit"] == 200 and stage_default["ThrottlingBurstLimit"] == 400
    route = settings[("/~1v1~1models~1iris~1predict", "POST")]
    assert route["ThrottlingRateLimit"] == 100 and route["ThrottlingBurstLimit"] == 200


def test_every_route_but_health_and_docs_requires_a_key(example: Synthesized) -> None:
    paths = {rid: r["Properties"]["PathPart"] for rid, r in resources(example, "AWS::ApiGateway::Resource").items()}
    public = set()
    for m in resources(example, "AWS::ApiGateway::Method").values():
        part = paths[m["Properties"]["ResourceId"]["Ref"]]
        if not m["Properties"].get("ApiKeyRequired"):
            public.add(part)
    assert public == {"health", "openapi.json", "docs", "live", "ready"}  # ready: /v2/health/ready only


def test_predict_routes_validate_the_body(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True})
    example.template.has_resource_properties("AWS::ApiGateway::Model", {
        "ContentType": "application/json",
        "Schema": Match.object_like({"type": "object", "required": ["inputs"]})})
    paths = {rid: r["Properties"]["PathPart"] for rid, r in resources(example, "AWS::ApiGateway::Resource").items()}
    posts = [m for m in resources(example, "AWS::ApiGateway::Method").values()
             if m["Properties"]["HttpMethod"] == "POST"
             and paths[m["Properties"]["ResourceId"]["Ref"]] not in ("infer", "uploads")]
    # /v1/models/{name}/predict, .../iris/predict, .../minilm/predict, /v1/jobs, /v1/cascades/{name}/predict,
    # /v1/batches
    assert len(posts) == 6
    for m in posts:
        assert "RequestValidatorId" in m["Properties"]
        assert "application/json" in m["Properties"]["RequestModels"]


def test_usage_plans_and_keys_from_the_manifest(example: Synthesized, snapstart: Synthesized) -> None:
    example.template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "UsagePlanName": "inferstack-example-free", "Throttle": {"RateLimit": 5, "BurstLimit": 10},
        "Quota": {"Limit": 10000, "Period": "DAY"}})
    example.template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "UsagePlanName": "inferstack-example-pro", "Throttle": {"RateLimit": 100, "BurstLimit": 200}})
    assert len(resources(example, "AWS::ApiGateway::UsagePlanKey")) == 2
    names = {k["Properties"]["Name"] for k in resources(snapstart, "AWS::ApiGateway::ApiKey").values()}
    assert names == {"snap-acme", "snap-globex"}
    snapstart.template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "Quota": {"Limit": 500, "Period": "MONTH"}})


def test_gateway_responses_are_problem_json(example: Synthesized) -> None:
    found = {r["Properties"]["ResponseType"]: r["Properties"]
             for r in resources(example, "AWS::ApiGateway::GatewayResponse").values()}
    assert set(found) == {g.response_type for g in GATEWAY_RESPONSES}
    for rtype in ("INVALID_API_KEY", "THROTTLED", "QUOTA_EXCEEDED", "REQUEST_TOO_LARGE", "DEFAULT_5XX"):
        props = found[rtype]
        assert props["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert {"type", "title", "detail"} <= set(body)
    assert found["THROTTLED"]["StatusCode"] == "429"
    assert found["THROTTLED"]["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert found["REQUEST_TOO_LARGE"]["StatusCode"] == "413"
    assert found["INVALID_API_KEY"]["StatusCode"] == "403"


def test_alarms_on_errors_throttles_and_p99_latency(example: Synthesized) -> None:
    alarms = list(resources(example, "AWS::CloudWatch::Alarm").values())
    metrics = {(a["Properties"].get("MetricName"), a["Properties"].get("ExtendedStatistic")) for a in alarms}
    assert {("Errors", None), ("Throttles", None), ("Duration", "p99"), ("5XXError", None),
            ("Latency", "p99")} <= metrics


def test_waf_when_enabled(snapstart: Synthesized, example: Synthesized) -> None:
    assert len(resources(snapstart, "AWS::WAFv2::WebACL")) == 1
    assert len(resources(snapstart, "AWS::WAFv2::WebACLAssociation")) == 1
    assert resources(example, "AWS::WAFv2::WebACL") == {}


def test_one_role_per_function_and_no_wildcard_actions(example: Synthesized) -> None:
    fns = resources(example, "AWS::Lambda::Function").values()
    roles = {fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in fns}
    assert len(roles) == len(fns)
    for policy in resources(example, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in a for a in actions), actions
            if statement["Resource"] == "*":  # only actions that have no resource-level permissions
                assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                                        "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData",
                                        # a state machine's tracing and log delivery (CloudWatch Logs vended logs)
                                        "xray:GetSamplingRules", "xray:GetSamplingTargets", "logs:CreateLogDelivery",
                                        "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                                        "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                                        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
                                        # granted by CDK's SageMaker .sync task (read-only: the job's tags)
                                        "sagemaker:ListTags"}, actions


def test_cfn_lint_is_clean(example: Synthesized, snapstart: Synthesized) -> None:
    for s in (example, snapstart):
        cfn_lint = Path(sys.executable).with_name("cfn-lint")
        out = subprocess.run([str(cfn_lint), str(s.template_file)], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def test_cdk_nag_gate_fails_on_an_unacknowledged_finding() -> None:
    # GIVEN an app with a resource that breaks AwsSolutions rules WHEN synthesized THEN synthesis fails: the
    # example's clean synth (fixtures above) therefore means every finding there is acknowledged
    app = App()
    stack = Stack(app, "Bad")
    s3.Bucket(stack, "Bucket")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*AwsSolutions-S10"):
        app.synth()


def test_every_acknowledgement_has_a_specific_reason() -> None:
    from pathlib import Path

    sources = "".join(p.read_text() for p in Path("inferstack_infra").rglob("*.py"))
    assert sources.count("Acknowledgment(") >= 4
    assert "reason=\"\"" not in sources and "reason=''" not in sources


def test_doctor_reports_each_function_size_against_the_limit(example: Synthesized) -> None:
    out = subprocess.run([str(Path(sys.executable).with_name("inferstack")), "doctor"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    names = {"api", "predict-iris", "predict-minilm", "worker-iris", "worker-minilm", "webhooks", "deadletter"}
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.split() and line.split()[0] in names}
    assert set(lines) == names
    assert all("MB to spare" in line and " ok," in line for line in lines.values())
    # the heavy model, measured as the light function it would be: it fits, by this much
    light = out.stdout.split('tier = "light"')[1]
    (line,) = [row for row in light.splitlines() if row.startswith("predict-minilm")]
    total, spare = float(line.split()[3].removesuffix("MB")), float(line.split(",")[1].split()[0])
    assert 100 < total < 250 and spare == pytest.approx(250 - total, abs=1)

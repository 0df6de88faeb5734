"""`inferstack rollout status --aws`: read-only CodeDeploy, SageMaker and CloudWatch calls (botocore's Stubber
checks every request against the service models), and the table it prints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from inferstack.manifest import parse_manifest
from inferstack_infra.cli.rollout import AwsRollouts, render
from tests.conftest import ROOT

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
MANIFEST = parse_manifest({"name": "demo", "models": [
    {"name": "iris", "path": "models/iris.onnx", "tier": "light"},
    {"name": "minilm", "path": "models/minilm/model.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge"}]},
    root=ROOT, check_files=False)


def client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def aws() -> Iterator[tuple[AwsRollouts, Stubber, Stubber, Stubber]]:
    cd, sm, cw = client("codedeploy"), client("sagemaker"), client("cloudwatch")
    with Stubber(cd) as s_cd, Stubber(sm) as s_sm, Stubber(cw) as s_cw:
        yield AwsRollouts(MANIFEST, codedeploy=cd, sagemaker=sm, cloudwatch=cw, now=NOW), s_cd, s_sm, s_cw


def metrics(stub: Stubber, model: str, versions: dict[str, tuple[float, float, float]]) -> None:
    stub.add_response("list_metrics", {"Metrics": [
        {"Namespace": "inferstack", "MetricName": "Requests", "Dimensions": [
            {"Name": "service", "Value": "inferstack"}, {"Name": "model", "Value": model},
            {"Name": "version", "Value": v}]} for v in versions]},
        {"Namespace": "inferstack", "MetricName": "Requests", "Dimensions": [{"Name": "model", "Value": model}]})
    for requests, errors, p99 in versions.values():
        stub.add_response("get_metric_data", {"MetricDataResults": [
            {"Id": "r", "Values": [requests]}, {"Id": "e", "Values": [errors]}, {"Id": "p", "Values": [p99]}]})


def test_a_rolled_back_lambda_deployment_and_a_heavy_endpoint(aws: tuple[AwsRollouts, Stubber, Stubber, Stubber]
                                                              ) -> None:
    rollouts, cd, sm, cw = aws
    # GIVEN CodeDeploy stopped iris's last deployment on an alarm, at 10 % of the traffic
    cd.add_response("list_deployments", {"deployments": ["d-ABC"]},
                    {"applicationName": "demo-models", "deploymentGroupName": "demo-iris-predict"})
    cd.add_response("get_deployment", {"deploymentInfo": {
        "status": "Stopped", "deploymentConfigName": "demo-iris-config", "createTime": NOW - dt.timedelta(seconds=95),
        "completeTime": NOW, "errorInformation": {"code": "ALARM_ACTIVE", "message": "Alarm RolloutsIrisErrorRate"}}},
        {"deploymentId": "d-ABC"})
    cd.add_response("list_deployment_targets", {"targetIds": ["fn:live"]}, {"deploymentId": "d-ABC"})
    cd.add_response("get_deployment_target", {"deploymentTarget": {"lambdaTarget": {"lambdaFunctionInfo": {
        "functionName": "fn", "currentVersion": "3", "targetVersion": "4", "targetVersionWeight": 0.1}}}},
        {"deploymentId": "d-ABC", "targetId": "fn:live"})
    metrics(cw, "iris", {"aaa111": (900, 0, 4.2), "bbb222": (100, 30, 5.0)})
    # AND minilm's endpoint in service
    sm.add_response("describe_endpoint", {
        "EndpointName": "demo-minilm", "EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/demo-minilm",
        "EndpointStatus": "InService", "CreationTime": NOW, "LastModifiedTime": NOW,
        "LastDeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
            "Type": "CANARY", "WaitIntervalInSeconds": 300}}}}, {"EndpointName": "demo-minilm"})
    metrics(cw, "minilm", {"ccc333": (50, 0, 120.0)})
    # WHEN the status is read THEN only read calls were made (the Stubber holds no other) and it says what happened
    status = rollouts.status()
    for stub in (cd, sm, cw):
        stub.assert_no_pending_responses()
    iris, minilm = status
    assert iris["phase"] == "rolled-back" and iris["split"]["candidate"] == 10
    assert iris["decision"]["reason"] == "Alarm RolloutsIrisErrorRate" and iris["decision"]["after_s"] == 95
    assert iris["versions"]["v2"] == {"version": "bbb222", "requests": 100, "errors": 30, "error_rate": 0.3,
                                      "p99_ms": 5.0}
    assert minilm["phase"] == "complete" and minilm["strategy"] == "CANARY"
    table = render(status)
    assert "iris: demo-iris-config rolled-back — current 90 % / new 10 %" in table
    assert "bbb222" in table and "30.0 %" in table and "decision: rolled-back after 95.00 s" in table


def test_nothing_deployed_yet(aws: tuple[AwsRollouts, Stubber, Stubber, Stubber]) -> None:
    rollouts, cd, _, cw = aws
    cd.add_response("list_deployments", {"deployments": []})
    metrics(cw, "iris", {})
    assert rollouts.light("iris")["phase"] == "no deployment yet"


def test_render_of_no_rollout() -> None:
    assert "no rollout in progress" in render([])

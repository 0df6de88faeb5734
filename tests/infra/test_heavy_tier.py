"""The heavy tier in the synthesized template."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from tests.infra.conftest import Synthesized


def by_type(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def test_model_runs_the_container_image_with_the_artifact_and_network_isolation(example: Synthesized) -> None:
    (model,) = by_type(example, "AWS::SageMaker::Model").values()
    props = model["Properties"]
    assert props["EnableNetworkIsolation"] is True
    container = props["PrimaryContainer"]
    assert "container-assets" in json.dumps(container["Image"])  # the DockerImageAsset of the packaged container
    assert container["ModelDataUrl"]  # the model.tar.gz S3 asset
    assert container["Environment"] == {"INFERSTACK_MAX_BATCH_SIZE": "64", "INFERSTACK_MAX_DELAY_MS": "5.0",
                                        "POWERTOOLS_SERVICE_NAME": "inferstack-example"}  # its metrics' service
    images = json.loads((example.outdir / "inferstack-example.assets.json").read_text())["dockerImages"]
    (image,) = images.values()
    assert image["source"]["dockerFile"] == "Dockerfile" and image["source"]["platform"] == "linux/amd64"
    # the context staged from the installed package: what the Dockerfile copies, and nothing of the project
    context = example.outdir / image["source"]["directory"]
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "inferstack", "requirements.txt", "serve"]
    assert (context / "inferstack" / "heavy" / "server.py").is_file()
    # the server runs as a numeric non-root user, set before the entrypoint
    lines = [line.split() for line in (context / "Dockerfile").read_text().splitlines() if line.strip()]
    users = [words[1] for words in lines if words[0] == "USER"]
    entry = next(i for i, words in enumerate(lines) if words[0] == "ENTRYPOINT")
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0
    assert max(i for i, words in enumerate(lines) if words[0] == "USER") < entry


def test_endpoint_on_the_manifest_gpu_instance(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"ProductionVariants": [
        Match.object_like({"InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1, "VariantName": "AllTraffic"})]})
    example.template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "inferstack-example-minilm"})


def test_autoscaling_tracks_invocations_per_instance(example: Synthesized) -> None:
    example.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "ResourceId": "endpoint/inferstack-example-minilm/variant/AllTraffic", "MinCapacity": 1, "MaxCapacity": 4})
    example.template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "TargetValue": 200,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})})


def test_execution_role_reads_only_its_artifact(example: Synthesized) -> None:
    statements = [st for k, p in by_type(example, "AWS::IAM::Policy").items()
                  if k.startswith("HeavyMinilmExecutionRole") for st in p["Properties"]["PolicyDocument"]["Statement"]]
    s3 = [st for st in statements if st["Action"] == "s3:GetObject"]
    # its artifact, one object, no wildcard; and, for Batch Transform (which reads a job's input with the model's
    # role), objects of the stack's batch bucket only
    artifact = [st for st in s3 if json.dumps(st["Resource"]).endswith('.gz"]]}')]
    batch_input = [st for st in s3 if "Batches" in json.dumps(st["Resource"])]
    assert len(artifact) == 1 and len(batch_input) == 1 and len(s3) == 2, s3
    assert not any(str(st["Action"]).startswith("s3:List") for st in statements)


def test_only_the_heavy_models_functions_may_invoke_the_endpoint(example: Synthesized) -> None:
    invokers = {k.split("Role")[0] for k, p in by_type(example, "AWS::IAM::Policy").items()
                for st in p["Properties"]["PolicyDocument"]["Statement"] if st["Action"] == "sagemaker:InvokeEndpoint"}
    assert invokers == {"PredictMinilm", "WorkerMinilm"}


def test_heavy_predict_route_reaches_the_proxy_function(example: Synthesized) -> None:
    (proxy,) = [f for f in by_type(example, "AWS::Lambda::Function").values()
                if f["Properties"]["Handler"] == "inferstack.functions.heavy.handler.handler"]
    variables = proxy["Properties"]["Environment"]["Variables"]
    assert variables["INFERSTACK_ENDPOINT"] == "inferstack-example-minilm" and variables["INFERSTACK_MODEL"] == "minilm"
    assert len(proxy["Properties"]["Layers"]) == 1  # no onnxruntime in the proxy
    assert proxy["Properties"]["Timeout"] < 29


def test_endpoint_alarms(example: Synthesized) -> None:
    metrics = {a["Properties"].get("MetricName") for a in by_type(example, "AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("Namespace") == "AWS/SageMaker"}
    assert metrics == {"ModelLatency", "Invocation5XXErrors"}

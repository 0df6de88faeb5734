"""The heavy tier: per heavy model a SageMaker real-time endpoint on a GPU instance, running the container in
`inferstack_infra/container/`, with target-tracking autoscaling on invocations per instance. A model with
`instances.min = 0` is the scale-to-zero flavour instead (`heavy_zero.ScaleToZeroHeavyModel`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, ArnFormat, CfnOutput, Duration, IgnoreMode, Stack, Validations
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from inferstack.manifest import Manifest, Model, resource_id
from inferstack.topology import endpoint_name

if TYPE_CHECKING:
    from inferstack_infra.constructs.heavy_zero import ScaleToZeroHeavyModel

VARIANT = "AllTraffic"


def container_image(scope: Construct) -> ecr_assets.DockerImageAsset:
    """The container image, built from the packaged `container/Dockerfile` at deploy time (synth only
    fingerprints it). Its context is staged in the project's build directory: the Dockerfile, its requirements
    and `serve`, and the installed run-time library."""
    from inferstack_infra.packaging import stage_container

    return ecr_assets.DockerImageAsset(
        scope, "Image", directory=str(stage_container()), file="Dockerfile",
        exclude=["**/__pycache__", "**/*.pyc"], ignore_mode=IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64)


@dataclass
class ContainerModel:
    """What every flavour of heavy model deploys the same way: the model archive, the execution role and the
    SageMaker model (the container image with the archive, network-isolated)."""

    artifact: s3_assets.Asset
    role: iam.Role
    model: sagemaker.CfnModel


def container_model(scope: Construct, *, model: Model, model_archive: Path, image: ecr_assets.DockerImageAsset | None,
                    log_groups: list[str], metric_namespaces: list[str], service: str) -> ContainerModel:
    """`log_groups`: the CloudWatch log group names (patterns) the containers write to; `metric_namespaces`:
    where they may put metrics; `service`: the deployment's name, the `service` dimension of its metrics."""
    stack = Stack.of(scope)
    artifact = s3_assets.Asset(scope, "Artifact", path=str(model_archive))
    role = iam.Role(scope, "ExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                    description=f"SageMaker execution role of heavy model {model.name}")
    iam.Grant.add_to_principal(  # the one object, not the whole asset bucket
        grantee=role, actions=["s3:GetObject"],
        resource_arns=[artifact.bucket.arn_for_objects(artifact.s3_object_key)])
    if model.image_uri:
        image_uri = model.image_uri
        repository = model.image_uri.split("/", 1)[1].split(":")[0].split("@")[0]
        ecr.Repository.from_repository_name(scope, "Repository", repository).grant_pull(role)
    else:
        assert image is not None
        image_uri = image.image_uri
        image.repository.grant_pull(role)
    role.add_to_policy(iam.PolicyStatement(
        actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        resources=[stack.format_arn(service="logs", resource="log-group", resource_name=group,
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME) for group in log_groups]))
    role.add_to_policy(iam.PolicyStatement(
        actions=["cloudwatch:PutMetricData"], resources=["*"],
        conditions={"StringLike": {"cloudwatch:namespace": metric_namespaces[0] if len(metric_namespaces) == 1
                                   else metric_namespaces}}))

    cfn_model = sagemaker.CfnModel(
        scope, "Model", execution_role_arn=role.role_arn, enable_network_isolation=True,
        primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
            image=image_uri, model_data_url=artifact.s3_object_url, mode="SingleModel",
            environment={"INFERSTACK_MAX_BATCH_SIZE": str(model.batching.max_batch_size),
                         "INFERSTACK_MAX_DELAY_MS": str(model.batching.max_delay_ms),
                         "POWERTOOLS_SERVICE_NAME": service}))
    # the role is referenced (GetAtt); its policy must exist too before SageMaker checks the role
    policy = role.node.find_child("DefaultPolicy")
    cfn_model.node.add_dependency(policy)

    reason_logs = ("SageMaker names the endpoint's log streams per instance at run time; the grant is limited to "
                   "this endpoint's log groups")
    Validations.of(policy).acknowledge(
        *[Acknowledgment(id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                            f"<AWS::AccountId>:log-group:{group}]", reason=reason_logs) for group in log_groups],
        Acknowledgment(id="AwsSolutions-IAM5[Resource::*]", reason="cloudwatch:PutMetricData has no resource-level "
                       "permissions (it is scoped by the namespace condition); ecr:GetAuthorizationToken neither"),
    )
    Validations.of(cfn_model).acknowledge(Acknowledgment(
        id="AwsSolutions-SM1", reason="The endpoint is reached only through the IAM-authenticated SageMaker "
        "runtime API by this stack's functions, and the container runs with network isolation; a VPC would "
        "add NAT cost and nothing to reach"))
    return ContainerModel(artifact, role, cfn_model)


def acknowledge_instance_storage(config: sagemaker.CfnEndpointConfig) -> None:
    Validations.of(config).acknowledge(Acknowledgment(
        id="AwsSolutions-SM2", reason="GPU instances serve from local NVMe instance storage, which SageMaker "
        "encrypts itself and for which it rejects a KMS key; the model artifact is encrypted in the S3 asset "
        "bucket"))


class HeavyModel(Construct):
    """A heavy model on an endpoint that always runs `instances.min` (at least one) instances. A model with A/B
    `variants` gets one production variant per variant (its own model archive and version), with the manifest's
    weights, each scaled by its own target tracking on invocations per instance."""

    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, model: Model, model_archive: Path,
                 image: ecr_assets.DockerImageAsset | None, variant_archives: dict[str, Path] | None = None) -> None:
        super().__init__(scope, id)
        name = endpoint_name(manifest, model.name)
        # (variant name, weight, archive, scope): the one AllTraffic variant, or each A/B variant
        arms: list[tuple[str, float, Path, Construct]] = [(VARIANT, 1.0, model_archive, self)]
        if variant_archives:
            arms = [(v.name, float(v.weight), variant_archives[v.name],
                     Construct(self, f"Variant{resource_id(v.name)}")) for v in model.variants or []]
        self.alarms: list[cloudwatch.Alarm] = []
        variants = []
        for variant, weight, archive, where in arms:
            parts = container_model(where, model=model, model_archive=archive, image=image,
                                    log_groups=[f"/aws/sagemaker/Endpoints/{name}*"],
                                    metric_namespaces=["/aws/sagemaker/Endpoints*"], service=manifest.name)
            if variant == arms[0][0]:
                self.artifact, self.role, self.model = parts.artifact, parts.role, parts.model
            variants.append(sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=variant, model_name=parts.model.attr_model_name, instance_type=model.instance_type,
                initial_instance_count=model.instances.min, initial_variant_weight=weight))
        self.config = sagemaker.CfnEndpointConfig(self, "Config", production_variants=variants)
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_name=name,
                                              endpoint_config_name=self.config.attr_endpoint_config_name)
        self.endpoint_name = name

        for variant, _, _, where in arms:  # each variant scales on its own invocations per instance
            target = appscaling.ScalableTarget(
                where, "Scaling", service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
                resource_id=f"endpoint/{name}/variant/{variant}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=model.instances.min, max_capacity=model.instances.max)
            target.node.add_dependency(self.endpoint)
            target.scale_to_track_metric(
                "InvocationsPerInstance", target_value=model.instances.target_invocations_per_instance,
                predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                scale_in_cooldown=Duration.minutes(5), scale_out_cooldown=Duration.minutes(1))
            self.alarms += endpoint_alarms(where, name, {"EndpointName": name, "VariantName": variant})
        acknowledge_instance_storage(self.config)
        CfnOutput(self, "EndpointName", value=name, description=f"SageMaker endpoint of heavy model {model.name}")

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"],
                                   resource_arns=[self.endpoint.ref])


def endpoint_alarms(scope: Construct, name: str, dims: dict[str, str]) -> list[cloudwatch.Alarm]:
    """p99 model latency and the container's 5XX answers, on the endpoint's variant or inference component."""
    return [
        cloudwatch.Alarm(scope, "ModelLatencyP99", metric=cloudwatch.Metric(
            namespace="AWS/SageMaker", metric_name="ModelLatency", dimensions_map=dims, statistic="p99",
            period=Duration.minutes(5)), threshold=2_000_000, evaluation_periods=3,  # microseconds
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{name}: p99 model latency above 2 s"),
        cloudwatch.Alarm(scope, "Invocation5XX", metric=cloudwatch.Metric(
            namespace="AWS/SageMaker", metric_name="Invocation5XXErrors", dimensions_map=dims, statistic="Sum",
            period=Duration.minutes(1)), threshold=5, evaluation_periods=5, datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{name}: the container answered 5XX"),
    ]


class HeavyTier(Construct):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, archives: dict[str, Path],
                 variant_archives: dict[str, dict[str, Path]] | None = None) -> None:
        super().__init__(scope, id)
        needs_image = any(not m.image_uri for m in manifest.heavy_models)
        image = container_image(self) if needs_image else None
        from inferstack_infra.constructs.heavy_zero import ScaleToZeroHeavyModel

        self.models: dict[str, HeavyModel | ScaleToZeroHeavyModel] = {}
        for m in manifest.heavy_models:
            if m.instances.scales_to_zero:
                self.models[m.name] = ScaleToZeroHeavyModel(self, resource_id(m.name), manifest=manifest, model=m,
                                                            model_archive=archives[m.name], image=image)
            else:
                self.models[m.name] = HeavyModel(self, resource_id(m.name), manifest=manifest, model=m,
                                                 model_archive=archives[m.name], image=image,
                                                 variant_archives=(variant_archives or {}).get(m.name))

"""A heavy model that costs nothing while idle (`instances = { min = 0, ... }`): SageMaker inference components
with a minimum of zero copies, scaled out on demand.

Why inference components and not asynchronous inference. Both reach zero instances. Asynchronous inference
answers through S3 and SNS, never within the call, so `predict` could not be served at all, and the jobs tier
would gain a second queue (the endpoint's own) beside the SQS queue it already has, with its retries, dead
letters and webhooks. An inference component keeps the one `InvokeEndpoint` call that `predict` and the jobs
worker make today (with the component's name added), so both keep their code: while no copy runs, SageMaker
answers "no capacity", the proxy answers 503 with `Retry-After`, and the worker hands the job back to its queue
(`inferstack.jobs.deferral`). Asynchronous inference would only be the better fit for a model that serves
jobs alone with payloads over SQS's limits or runs over 60 s, which the jobs tier does not allow for anyway.

Four pieces make zero work, each required (AWS: "Scale an endpoint to zero instances"):
1. the model as an inference component on the endpoint; the variant names no model, and the execution role
   moves to the endpoint configuration;
2. managed instance scaling on the variant with `MinInstanceCount = 0`: SageMaker adds instances for new
   copies and releases those that host none (without it, instances stay up when the copies go);
3. target tracking on the component's copy count, minimum 0, on invocations per copy: it scales in to zero
   after the idle datapoints (about 15 minutes) and out under load;
4. a step scaling policy triggered by an alarm on `NoCapacityInvocationFailures` (one invocation at zero copies
   is enough): target tracking cannot leave zero, since it divides by the copy count.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from inferstack.manifest import Manifest, Model
from inferstack.topology import endpoint_name, inference_component_name
from inferstack_infra.constructs.heavy import VARIANT, acknowledge_instance_storage, container_model, endpoint_alarms

#: What one copy reserves on an instance: one GPU, and the memory SageMaker's scheduler accepts on the smallest
#: GPU instances (a reservation for placement, not a limit on the container).
COPY_MEMORY_MB = 1024
COPY_ACCELERATORS = 1
#: Seconds SageMaker waits for a new copy's model download and first successful /ping.
STARTUP_TIMEOUT_S = 600


class ScaleToZeroHeavyModel(Construct):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, model: Model, model_archive: Path,
                 image: ecr_assets.DockerImageAsset | None) -> None:
        super().__init__(scope, id)
        name = endpoint_name(manifest, model.name)
        component = inference_component_name(manifest, model.name)
        assert component is not None and model.instance_type
        parts = container_model(self, model=model, model_archive=model_archive, image=image,
                                log_groups=[f"/aws/sagemaker/Endpoints/{name}*",
                                            f"/aws/sagemaker/InferenceComponents/{component}*"],
                                metric_namespaces=["/aws/sagemaker/Endpoints*", "/aws/sagemaker/InferenceComponents*"],
                                service=manifest.name)
        self.artifact, self.role, self.model = parts.artifact, parts.role, parts.model
        self.config = sagemaker.CfnEndpointConfig(
            self, "Config", execution_role_arn=self.role.role_arn, enable_network_isolation=True,
            production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT, instance_type=model.instance_type, initial_instance_count=1,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED", min_instance_count=0, max_instance_count=model.instances.max),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"))])
        self.config.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_name=name,
                                              endpoint_config_name=self.config.attr_endpoint_config_name)
        self.endpoint_name = name
        # one copy at deployment, so that a deployment proves the model loads; the policies below take it to zero
        self.component = sagemaker.CfnInferenceComponent(
            self, "Component", inference_component_name=component, endpoint_name=self.endpoint.attr_endpoint_name,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.
                InferenceComponentComputeResourceRequirementsProperty(
                    min_memory_required_in_mb=COPY_MEMORY_MB, number_of_accelerator_devices_required=COPY_ACCELERATORS),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=STARTUP_TIMEOUT_S,
                    model_data_download_timeout_in_seconds=STARTUP_TIMEOUT_S)),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(copy_count=1))
        self.component_name = component

        self.scaling = appscaling.ScalableTarget(
            self, "Scaling", service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{component}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0, max_capacity=model.instances.max)
        self.scaling.node.add_dependency(self.component)
        self.scaling.scale_to_track_metric(
            "InvocationsPerCopy", target_value=model.instances.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
            scale_in_cooldown=Duration.minutes(5), scale_out_cooldown=Duration.minutes(1))
        # the alarm stays in ALARM while callers keep knocking during the wake (minutes); a cooldown as long as a
        # copy may take to start keeps it at one copy per wake (the step repeats after each cooldown)
        scale_out = appscaling.StepScalingAction(
            self, "ScaleOutFromZero", scaling_target=self.scaling,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=Duration.seconds(STARTUP_TIMEOUT_S))
        scale_out.add_adjustment(adjustment=1, lower_bound=0)
        self.no_capacity = cloudwatch.Alarm(
            self, "NoCapacity", metric=cloudwatch.Metric(
                namespace="AWS/SageMaker", metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": component}, statistic="Sum", period=Duration.minutes(1)),
            threshold=1, evaluation_periods=1, datapoints_to_alarm=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{component}: called with no copy running; scales out from zero")
        self.no_capacity.add_alarm_action(cw_actions.ApplicationScalingAction(scale_out))

        self.alarms = endpoint_alarms(self, component, {"InferenceComponentName": component})
        acknowledge_instance_storage(self.config)
        CfnOutput(self, "EndpointName", value=name, description=f"SageMaker endpoint of heavy model {model.name}")
        CfnOutput(self, "InferenceComponentName", value=component,
                  description=f"inference component of heavy model {model.name} (scales to zero)")

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"],
                                   resource_arns=[self.endpoint.ref, self.component.attr_inference_component_arn])

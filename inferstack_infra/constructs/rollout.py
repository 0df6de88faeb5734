"""Safe model updates: every model version reaches its traffic through a rollout that alarms can roll back.

Light models: a CodeDeploy deployment group on the `live` alias of the model's predict function, and one on its
job worker's alias, both with the manifest's canary or linear configuration and the same alarms, so that jobs
shift with predict and either group's alarm rolls both back. CloudFormation hands every change of the alias to
CodeDeploy (the alias's `UpdatePolicy`), which shifts the alias's weights between the old and the new function
version; provisioned concurrency stays on the alias and Lambda splits it by the weights.

Heavy models: the SageMaker endpoint's blue/green deployment configuration (canary or linear traffic routing,
the step's wait, a termination wait before the old fleet goes) with the same alarms for automatic rollback;
`predict` and jobs both call the endpoint, so they shift together. A model that scales to zero (an inference
component) gets the component's rolling update, batch by batch, with the same alarms.

The alarms watch the new version alone: the per-model metrics carry a `version` dimension (the catalog's version,
known at synth time, and the version every answer names), so the error rate and p99 of the new version are
judged apart from the old one's. Each alarm waits for `min_requests` answers in its one-minute period, as the
local twin (`inferstack_infra/local/rollout.py`) does.
"""

from __future__ import annotations

from typing import Literal

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from inferstack.manifest import Manifest, Model, resource_id
from inferstack.observability.emf import LATENCY, NAMESPACE, REQUESTS, SERVICE, STATUS_5XX
from inferstack.rollout.config import ALARM_PERIOD_S, Rollout
from inferstack.topology import predict_function_key, rollout_application, rollout_group, worker_function_key
from inferstack_infra.constructs.function import ALIAS, InferenceFunction

#: Seconds SageMaker keeps the old fleet after a blue/green deployment completes (a last chance to roll back by
#: hand without a new fleet), and its ceiling on a whole deployment.
TERMINATION_WAIT_S = 300
MAX_EXECUTION_S = 28_800


def lambda_deployment_config(scope: Construct, rollout: Rollout) -> codedeploy.ILambdaDeploymentConfig:
    if rollout.strategy == "all-at-once":
        return codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE
    interval = Duration.minutes(rollout.interval_min)
    routing: codedeploy.TrafficRouting = (
        codedeploy.TimeBasedCanaryTrafficRouting(interval=interval, percentage=rollout.percent)
        if rollout.strategy == "canary" else
        codedeploy.TimeBasedLinearTrafficRouting(interval=interval, percentage=rollout.percent))
    return codedeploy.LambdaDeploymentConfig(scope, "Config", traffic_routing=routing)


def version_alarms(scope: Construct, model: Model, version: str, *,
                   crashes: cloudwatch.IMetric | None = None) -> list[cloudwatch.Alarm]:
    """The manifest's rollout alarms on one version's answers: its share of 5xx (plus `crashes`, invocations that
    never answered) and its p99 latency, each judged once `min_requests` answers are in the minute."""
    rollout = model.rollout
    thresholds = rollout.thresholds(latency_budget_ms=model.latency_budget_ms, timeout_s=model.timeout_s)
    period = Duration.seconds(ALARM_PERIOD_S)
    dims = {"service": SERVICE, "model": model.name, "version": version}

    def metric(name: str, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace=NAMESPACE, metric_name=name, dimensions_map=dims, statistic=statistic,
                                 period=period)

    answered = "(requests + FILL(crashes, 0))" if crashes else "requests"
    enough = f"{answered} >= {rollout.min_requests}"
    alarms = []
    if "error_rate" in thresholds:
        failed = "FILL(errors, 0)" + (" + FILL(crashes, 0)" if crashes else "")
        using: dict[str, cloudwatch.IMetric] = {"requests": metric(REQUESTS, "Sum"),
                                                "errors": metric(STATUS_5XX, "Sum")}
        if crashes:
            using["crashes"] = crashes
        alarms.append(cloudwatch.Alarm(
            scope, "ErrorRate", metric=cloudwatch.MathExpression(
                expression=f"IF({enough}, ({failed}) / {answered}, 0)" if crashes else
                f"IF({enough}, {failed} / {answered}, 0)", using_metrics=using, period=period,
                label=f"{model.name} {version}: share of 5xx answers"),
            threshold=thresholds["error_rate"], evaluation_periods=1, datapoints_to_alarm=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"rollout of {model.name} version {version}: more than {thresholds['error_rate']:g} "
            f"of its answers are 5xx (at least {rollout.min_requests} in a minute); rolls the rollout back"))
    if "p99_ms" in thresholds:
        alarms.append(cloudwatch.Alarm(
            scope, "LatencyP99", metric=cloudwatch.MathExpression(
                expression=f"IF(requests >= {rollout.min_requests}, latency, 0)", period=period,
                using_metrics={"requests": metric(REQUESTS, "Sum"), "latency": metric(LATENCY, "p99")},
                label=f"{model.name} {version}: p99 latency (ms)"),
            threshold=thresholds["p99_ms"], evaluation_periods=1, datapoints_to_alarm=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"rollout of {model.name} version {version}: p99 latency above "
            f"{thresholds['p99_ms']:g} ms; rolls the rollout back"))
    return alarms


class LightRollout(Construct):
    """A light model's predict and worker aliases, each a CodeDeploy deployment group with the same alarms."""

    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, model: Model, version: str,
                 application: codedeploy.ILambdaApplication, predict: InferenceFunction,
                 worker: InferenceFunction | None) -> None:
        super().__init__(scope, id)
        new_version = predict.function.current_version.version
        crashes = cloudwatch.Metric(
            namespace="AWS/Lambda", metric_name="Errors", statistic="Sum", period=Duration.seconds(ALARM_PERIOD_S),
            dimensions_map={"FunctionName": predict.function.function_name,
                            "Resource": f"{predict.function.function_name}:{ALIAS}", "ExecutedVersion": new_version})
        self.alarms = version_alarms(self, model, version, crashes=crashes)
        config = lambda_deployment_config(self, model.rollout)
        self.groups: dict[str, codedeploy.LambdaDeploymentGroup] = {}
        roles: tuple[tuple[Literal["predict", "worker"], InferenceFunction | None], ...] = (
            ("predict", predict), ("worker", worker))
        for role, function in roles:
            if function is None:
                continue
            group = codedeploy.LambdaDeploymentGroup(
                self, role.capitalize(), application=application, alias=function.alias, deployment_config=config,
                deployment_group_name=rollout_group(manifest, model.name, role), alarms=self.alarms,
                auto_rollback=codedeploy.AutoRollbackConfig(deployment_in_alarm=True, failed_deployment=True,
                                                            stopped_deployment=True))
            Validations.of(group.role).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                   "AWSCodeDeployRoleForLambdaLimited]",
                reason="CodeDeploy's own service policy for Lambda deployments: it may only read and update the "
                "aliases of functions it deploys and publish to SNS topics named CodeDeployTopic*"))
            self.groups[role] = group
            # the alarms move to the new version (its dimensions) before the alias update starts the deployment
            function.alias.node.add_dependency(*self.alarms)


def endpoint_deployment_config(rollout: Rollout, alarms: list[cloudwatch.Alarm]
                               ) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
    """SageMaker's blue/green deployment with the manifest's traffic routing and automatic rollback."""
    wait = rollout.interval_min * 60
    size = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=rollout.percent)
    routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
        type=rollout.strategy.upper().replace("-", "_"), wait_interval_in_seconds=wait,
        canary_size=size if rollout.strategy == "canary" else None,
        linear_step_size=size if rollout.strategy == "linear" else None)
    return sagemaker.CfnEndpoint.DeploymentConfigProperty(
        blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
            traffic_routing_configuration=routing, termination_wait_in_seconds=TERMINATION_WAIT_S,
            maximum_execution_timeout_in_seconds=MAX_EXECUTION_S),
        auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
            alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=a.alarm_name) for a in alarms]))


def component_deployment_config(rollout: Rollout, alarms: list[cloudwatch.Alarm]
                                ) -> sagemaker.CfnInferenceComponent.InferenceComponentDeploymentConfigProperty:
    """An inference component's rolling update: `percent` of its copies at a time, `interval_min` apart."""
    c = sagemaker.CfnInferenceComponent
    batch = c.InferenceComponentCapacitySizeProperty(
        type="CAPACITY_PERCENT", value=100 if rollout.strategy == "all-at-once" else rollout.percent)
    return c.InferenceComponentDeploymentConfigProperty(
        rolling_update_policy=c.InferenceComponentRollingUpdatePolicyProperty(
            maximum_batch_size=batch, rollback_maximum_batch_size=c.InferenceComponentCapacitySizeProperty(
                type="CAPACITY_PERCENT", value=100),
            wait_interval_in_seconds=rollout.interval_min * 60, maximum_execution_timeout_in_seconds=MAX_EXECUTION_S),
        auto_rollback_configuration=c.AutoRollbackConfigurationProperty(
            alarms=[c.AlarmProperty(alarm_name=a.alarm_name) for a in alarms]))


class Rollouts(Construct):
    """Every model's rollout: one CodeDeploy application for the light models' deployment groups, and the
    deployment configuration of each heavy model's endpoint (or inference component)."""

    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, versions: dict[str, str],
                 functions: dict[str, InferenceFunction], endpoints: dict[str, Construct]) -> None:
        super().__init__(scope, id)
        self.light: dict[str, LightRollout] = {}
        self.heavy_alarms: dict[str, list[cloudwatch.Alarm]] = {}
        if manifest.light_models:
            self.application = codedeploy.LambdaApplication(self, "Application",
                                                            application_name=rollout_application(manifest))
        for m in manifest.light_models:
            self.light[m.name] = LightRollout(
                self, resource_id(m.name), manifest=manifest, model=m, version=versions[m.name],
                application=self.application, predict=functions[predict_function_key(m.name)],
                worker=functions.get(worker_function_key(m.name)))
        for m in manifest.heavy_models:
            scope_ = Construct(self, resource_id(m.name))
            alarms = self.heavy_alarms[m.name] = version_alarms(scope_, m, versions[m.name])
            target = endpoints[m.name]
            component = getattr(target, "component", None)
            if isinstance(component, sagemaker.CfnInferenceComponent):
                component.deployment_config = component_deployment_config(m.rollout, alarms)
            else:
                endpoint = getattr(target, "endpoint", None)
                assert isinstance(endpoint, sagemaker.CfnEndpoint)
                endpoint.deployment_config = endpoint_deployment_config(m.rollout, alarms)

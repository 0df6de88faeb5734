"""One Lambda function of the deployment, with its `live` alias, cold-start strategy and alarms."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from inferstack.manifest import ColdStart
from inferstack.topology import FunctionSpec

RUNTIME = lambda_.Runtime.PYTHON_3_14
ALIAS = "live"


class InferenceFunction(Construct):
    """A function (arm64, Python 3.14) with its own log group and role, published as the alias `live`.

    `cold_start` picks provisioned concurrency on the alias (scaled by Application Auto Scaling target
    tracking on utilisation), SnapStart on published versions, or neither.
    """

    def __init__(self, scope: Construct, id: str, *, spec: FunctionSpec, code_dir: Path,
                 layers: list[lambda_.ILayerVersion], environment: dict[str, str],
                 cold_start: ColdStart | None = None, reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, id)
        self.spec = spec
        cold_start = cold_start or ColdStart()
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"inferstack function {spec.key}")
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self, "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=spec.handler,
            code=lambda_.Code.from_asset(str(code_dir)),
            layers=layers,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            environment=environment,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if cold_start.mode == "snapstart" else None,
        )
        self._depend_on_policy_only()
        provisioned = cold_start.mode == "provisioned"
        self.alias = lambda_.Alias(
            self, "Live", alias_name=ALIAS, version=self.function.current_version,
            provisioned_concurrent_executions=cold_start.min_instances if provisioned else None,
        )
        if provisioned:
            scaling = self.alias.add_auto_scaling(min_capacity=cold_start.min_instances,
                                                  max_capacity=cold_start.max_instances)
            scaling.scale_on_utilization(utilization_target=cold_start.utilization)

        Validations.of(self.role).acknowledge(
            Acknowledgment(id="AwsSolutions-IAM5[Resource::*]",
                           reason="Active X-Ray tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, "
                           "which support no resource-level permissions (the only wildcard in this role)"))

        self.alarms = [
            cloudwatch.Alarm(
                self, "Errors", metric=self.alias.metric_errors(period=Duration.minutes(1), statistic="Sum"),
                threshold=1, evaluation_periods=5, datapoints_to_alarm=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{spec.key}: invocations failed in 3 of the last 5 minutes"),
            cloudwatch.Alarm(
                self, "Throttles", metric=self.alias.metric_throttles(period=Duration.minutes(1), statistic="Sum"),
                threshold=1, evaluation_periods=5, datapoints_to_alarm=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{spec.key}: invocations throttled (reserved concurrency or account limit)"),
            cloudwatch.Alarm(
                self, "DurationP99", metric=self.alias.metric_duration(period=Duration.minutes(5), statistic="p99"),
                threshold=spec.timeout_s * 1000 * 0.8, evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{spec.key}: p99 duration above 80% of the {spec.timeout_s}s timeout"),
        ]

    def _depend_on_policy_only(self) -> None:
        """Lambda adds DependsOn on the whole role; the role itself is already implied by `GetAtt Role.Arn`
        (cfn-lint W3005), so keep only the dependency that matters: the role's policy (logs, X-Ray)."""
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        cfn_function = self.function.node.default_child
        assert isinstance(policy, CfnResource) and isinstance(cfn_function, CfnResource)
        cfn_function.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])

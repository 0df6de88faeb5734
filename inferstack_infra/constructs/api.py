"""The regional REST API: routes, API keys and usage plans, throttles, validation, problem+json errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from inferstack.api.problems import GATEWAY_RESPONSES, RETRY_AFTER_S
from inferstack.manifest import Manifest, resource_id
from inferstack.protocol.events import BINARY_MEDIA_TYPES, MIN_COMPRESSION_BYTES
from inferstack.topology import API_STAGE, Route

_JSON_TYPES = {t.name.lower(): t for t in apigw.JsonSchemaType}


def json_schema(schema: Mapping[str, Any]) -> apigw.JsonSchema:
    """The subset of draft-4 JSON schema our request models use, as CDK's `JsonSchema`."""
    kind = schema.get("type")
    kinds = [_JSON_TYPES[k] for k in kind] if isinstance(kind, list) else _JSON_TYPES[kind] if kind else None
    return apigw.JsonSchema(
        schema=apigw.JsonSchemaVersion.DRAFT4 if "$schema" in schema else None,
        title=schema.get("title"),
        type=kinds,
        required=schema.get("required"),
        properties={k: json_schema(v) for k, v in schema.get("properties", {}).items()} or None,
    )


class RestApiTier(Construct):
    """One REST API in front of every tier. Routes come from `inferstack.topology.routes`, so they are the
    ones the local gateway serves."""

    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, routes: list[Route],
                 targets: Mapping[str, lambda_.IFunction]) -> None:
        super().__init__(scope, id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                    removal_policy=RemovalPolicy.DESTROY)
        method_options = {
            f"{r.path}/{r.method}": apigw.MethodDeploymentOptions(throttling_rate_limit=r.throttle.rate,
                                                                  throttling_burst_limit=r.throttle.burst)
            for r in routes if r.throttle
        }
        self.api = apigw.RestApi(
            self, "Api",
            rest_api_name=manifest.name,
            description=f"inferstack: {manifest.name}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            # binary tensors (the Open Inference Protocol's binary data extension) pass as bytes both ways, and
            # responses are compressed for clients that send Accept-Encoding (requests are always decoded)
            binary_media_types=list(BINARY_MEDIA_TYPES),
            min_compression_size=Size.bytes(MIN_COMPRESSION_BYTES),
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                throttling_rate_limit=manifest.api.throttle.rate,
                throttling_burst_limit=manifest.api.throttle.burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                tracing_enabled=True,
                method_options=method_options,
            ),
        )
        self.validator = self.api.add_request_validator("BodyValidator", validate_request_body=True,
                                                        validate_request_parameters=True)
        models: dict[str, apigw.Model] = {}
        integrations: dict[str, apigw.LambdaIntegration] = {}
        for route in routes:
            options: dict[str, Any] = {"api_key_required": route.api_key_required}
            if route.body_schema is not None:
                title = route.body_schema["title"]
                if title not in models:
                    models[title] = self.api.add_model(title, content_type="application/json", model_name=title,
                                                       schema=json_schema(route.body_schema))
                options.update(request_validator=self.validator,
                               request_models={"application/json": models[title]})
            if route.function not in integrations:
                integrations[route.function] = apigw.LambdaIntegration(targets[route.function], proxy=True,
                                                                       timeout=Duration.seconds(29))
            method = self.api.root.resource_for_path(route.path).add_method(
                route.method, integrations[route.function], **options)
            Validations.of(method).acknowledge(*self._access_model(route))

        for g in GATEWAY_RESPONSES:
            headers = {"Content-Type": "'application/problem+json'"}
            if g.retry_after:
                headers["Retry-After"] = f"'{RETRY_AFTER_S}'"
            self.api.add_gateway_response(
                resource_id(g.response_type.lower()), type=getattr(apigw.ResponseType, g.response_type.replace(
                    "DEFAULT_4XX", "DEFAULT_4_XX").replace("DEFAULT_5XX", "DEFAULT_5_XX")),
                status_code=str(g.problem.status) if g.fixed_status else None,
                response_headers=headers, templates={"application/json": g.template()})

        self.plans: dict[str, apigw.UsagePlan] = {}
        for plan in manifest.api.plans:
            usage_plan = self.api.add_usage_plan(
                f"Plan{resource_id(plan.name)}", name=f"{manifest.name}-{plan.name}",
                throttle=apigw.ThrottleSettings(rate_limit=plan.throttle.rate, burst_limit=plan.throttle.burst),
                quota=apigw.QuotaSettings(limit=plan.quota.limit, period=apigw.Period[plan.quota.period])
                if plan.quota else None,
                api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
            )
            self.plans[plan.name] = usage_plan
            for key_name in plan.keys or [f"{plan.name}-key"]:
                key = self.api.add_api_key(f"Key{resource_id(plan.name)}{resource_id(key_name)}",
                                           api_key_name=f"{manifest.name}-{key_name}")
                usage_plan.add_api_key(key)
                CfnOutput(self, f"ApiKey{resource_id(plan.name)}{resource_id(key_name)}", value=key.key_id,
                          description=f"API key {key_name} (plan {plan.name}); its value: aws apigateway "
                          "get-api-key --include-value --api-key <id>")

        if manifest.api.waf:
            self._web_acl(manifest)
        else:
            Validations.of(self.api.deployment_stage).acknowledge(Acknowledgment(
                id="AwsSolutions-APIG3", reason="WAF is off in the manifest (api.waf = false): abuse is bounded "
                "by API keys, per-plan rate/burst/quota and stage throttles; set api.waf = true to attach the "
                "managed-rules web ACL"))
        Validations.of(self.api).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
               "AmazonAPIGatewayPushToCloudWatchLogs]",
            reason="The account-level role API Gateway needs to write execution logs; AWS keeps this managed "
            "policy scoped to exactly that"))

        self.alarms = [
            cloudwatch.Alarm(self, "ServerErrors", metric=self.api.metric_server_error(
                period=Duration.minutes(1), statistic="Sum"), threshold=5, evaluation_periods=5,
                datapoints_to_alarm=3, treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description="API: more than 5 5XX answers a minute in 3 of the last 5 minutes"),
            cloudwatch.Alarm(self, "LatencyP99", metric=self.api.metric_latency(
                period=Duration.minutes(5), statistic="p99"), threshold=5000, evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description="API: p99 latency above 5 s for 15 minutes"),
        ]
        CfnOutput(self, "Url", value=self.api.url, description="Base URL; routes start with v1/")

    @staticmethod
    def _access_model(route: Route) -> list[Acknowledgment]:
        """Why a method has no IAM/Cognito authorizer: the API's access model is API keys and usage plans."""
        if route.api_key_required:
            reason = ("Callers authenticate with API keys bound to usage plans (x-api-key), the access model of "
                      "this API: each key carries its client's rate, burst and quota; there are no end-user "
                      "identities for Cognito to hold")
        else:
            reason = f"{route.method} {route.path} is public by design: health checks and API docs need no key"
        return [Acknowledgment(id="AwsSolutions-APIG4", reason=reason),
                Acknowledgment(id="AwsSolutions-COG4", reason=reason)]

    def _web_acl(self, manifest: Manifest) -> None:
        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=wafv2.CfnWebACL.
                                                            ManagedRuleGroupStatementProperty(vendor_name="AWS",
                                                                                              name=name)),
                visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                    cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True))

        acl = wafv2.CfnWebACL(
            self, "WebAcl", scope="REGIONAL", default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=f"{manifest.name}-waf", sampled_requests_enabled=True),
            rules=[managed("AWSManagedRulesCommonRuleSet", 0), managed("AWSManagedRulesKnownBadInputsRuleSet", 1)])
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", web_acl_arn=acl.attr_arn,
                                   resource_arn=self.api.deployment_stage.stage_arn)

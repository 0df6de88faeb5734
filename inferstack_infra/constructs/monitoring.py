"""Alarms that reach someone, and the dashboard.

- One SNS topic, encrypted with its own KMS key (which CloudWatch may use), receives the alarm and the OK
  notification of EVERY alarm in the stack: an aspect visits them all, those other constructs add later too.
- One composite alarm per model (`<stack>-page-<model>`: any of the alarms of its function, worker, queues and
  endpoint) and one for the rest (`<stack>-page-platform`: the API, the API, webhook and dead-letter functions,
  the webhook queues), so that one incident pages once.
- The manifest's `[alerts] emails` and `https` subscribe to the topic, filtered on the message body to the
  composite alarms: they are paged once per incident, while anything else subscribed later (a chat bot, an
  incident tool) may hear every alarm.
- One CloudWatch dashboard (`inferstack_infra.constructs.dashboard`), its URL a stack output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Aspects, Aws, CfnOutput, IAspect, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct, IConstruct

from inferstack.manifest import Manifest, resource_id
from inferstack.observability import emf
from inferstack.topology import batch_function_key, job_queue_key, predict_function_key, worker_function_key
from inferstack_infra.constructs.api import RestApiTier
from inferstack_infra.constructs.dashboard import CONTAINER_FILTERS, ModelParts, api_row, cascade_rows, model_rows
from inferstack_infra.constructs.function import InferenceFunction
from inferstack_infra.constructs.heavy import HeavyModel, HeavyTier
from inferstack_infra.constructs.heavy_zero import ScaleToZeroHeavyModel
from inferstack_infra.constructs.jobs import JobTier

#: Composite alarms that page are named `<stack>-page-<model>` (and `<stack>-page-platform`).
PAGE = "page"
PLATFORM = "platform"


def page_alarm_name(manifest: Manifest, part: str) -> str:
    return f"{manifest.name}-{PAGE}-{part}"


@jsii.implements(IAspect)
class NotifyTopic:
    """Gives every alarm (metric and composite) an alarm action and an OK action on the topic."""

    def __init__(self, topic: sns.ITopic) -> None:
        self.action = cw_actions.SnsAction(topic)
        self.done: set[str] = set()

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, (cw.Alarm, cw.CompositeAlarm)) and node.node.path not in self.done:
            self.done.add(node.node.path)
            node.add_alarm_action(self.action)
            node.add_ok_action(self.action)


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, api: RestApiTier,
                 functions: Mapping[str, InferenceFunction], jobs: JobTier, heavy: HeavyTier,
                 model_alarms: Mapping[str, Sequence[cw.IAlarm]] | None = None) -> None:
        """`model_alarms`: more alarms of each model (e.g. its rollouts'), to page through its composite."""
        super().__init__(scope, id)
        stack = Stack.of(self)
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True,
                      description=f"{manifest.name}: encrypts the alarm notifications topic")
        # CloudWatch publishes the notifications: it must be able to use the key (an AWS-managed SNS key
        # would not let it)
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True,
                               display_name=f"{manifest.name} alarms")

        claimed: set[str] = set()

        def alarms_of(*parts: str) -> list[cw.IAlarm]:
            out: list[cw.IAlarm] = []
            for part in parts:
                found = functions[part].alarms if part in functions else jobs.queue_alarms.get(part, [])
                out.extend(found)
                claimed.add(part)
            return out

        self.composites: dict[str, cw.CompositeAlarm] = {}
        model_parts: list[ModelParts] = []
        for m in manifest.models:
            queue_key = job_queue_key(m.name)
            members = alarms_of(predict_function_key(m.name), worker_function_key(m.name), queue_key,
                                f"{queue_key}-dlq", batch_function_key(m.name))
            endpoint = heavy.models.get(m.name)
            if endpoint is not None:
                members.extend(endpoint.alarms)
            members.extend((model_alarms or {}).get(m.name, ()))
            self.composites[m.name] = self._composite(manifest, m.name, members,
                                                      f"model {m.name}: its function, worker, job queues"
                                                      + (" or endpoint" if endpoint else "") + " need attention")
            if endpoint is not None:
                self._container_filters(manifest, m.name, endpoint)
            model_parts.append(ModelParts(
                model=m, predict=functions.get(predict_function_key(m.name)),
                worker=functions.get(worker_function_key(m.name)), queue=jobs.queues[queue_key],
                dlq=jobs.queues[f"{queue_key}-dlq"], endpoint=endpoint.endpoint_name if endpoint else None,
                component=getattr(endpoint, "component_name", None)))
        rest = [a for key, f in functions.items() if key not in claimed for a in f.alarms]
        rest += [a for key, alarms in jobs.queue_alarms.items() if key not in claimed for a in alarms]
        self.composites[PLATFORM] = self._composite(
            manifest, PLATFORM, [*api.alarms, *rest], "the API, its function, or webhook delivery need attention")

        page_filter = {"AlarmName": sns.FilterOrPolicy.filter(sns.SubscriptionFilter.string_filter(
            match_prefixes=[f"{manifest.name}-{PAGE}-"]))}
        for email in manifest.alerts.emails:
            self.topic.add_subscription(subs.EmailSubscription(email, filter_policy_with_message_body=page_filter))
        for url in manifest.alerts.https:
            self.topic.add_subscription(subs.UrlSubscription(url, protocol=sns.SubscriptionProtocol.HTTPS,
                                                             filter_policy_with_message_body=page_filter))
        Aspects.of(stack).add(NotifyTopic(self.topic))

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=manifest.name,
                                      default_interval=None, period_override=cw.PeriodOverride.AUTO)
        self.dashboard.add_widgets(*api_row(manifest, api.api.rest_api_name, list(self.composites.values())))
        for parts in model_parts:
            for row in model_rows(manifest, api.api.rest_api_name, parts):
                self.dashboard.add_widgets(*row)
        for row in cascade_rows(manifest, api.api.rest_api_name):
            self.dashboard.add_widgets(*row)

        CfnOutput(self, "DashboardUrl", description="The deployment's CloudWatch dashboard",
                  value=f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                        f"#dashboards/dashboard/{manifest.name}")
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn,
                  description="Every alarm notifies this SNS topic (subscribe more receivers to it)")

    def _container_filters(self, manifest: Manifest, model: str, endpoint: HeavyModel | ScaleToZeroHeavyModel) -> None:
        """Metrics from the heavy container's log (its batch sizes and queue depth), by metric filters: SageMaker
        creates the log group when the container starts, so each filter waits for the endpoint (or component)."""
        component = getattr(endpoint, "component_name", None)
        group = logs.LogGroup.from_log_group_name(
            self, f"{resource_id(model)}ContainerLog",
            f"/aws/sagemaker/InferenceComponents/{component}" if component
            else f"/aws/sagemaker/Endpoints/{endpoint.endpoint_name}")
        ready = getattr(endpoint, "component", None) or endpoint.endpoint
        for metric, member in CONTAINER_FILTERS.items():
            f = logs.MetricFilter(
                self, f"{resource_id(model)}{metric}", log_group=group, metric_namespace=emf.NAMESPACE,
                metric_name=metric, metric_value=member, filter_pattern=logs.FilterPattern.exists(member),
                dimensions={"service": "$.service", "model": "$.model"})
            f.node.add_dependency(ready)

    def _composite(self, manifest: Manifest, part: str, members: list[cw.IAlarm], why: str) -> cw.CompositeAlarm:
        return cw.CompositeAlarm(
            self, f"Page{''.join(w.capitalize() for w in part.replace('_', '-').split('-'))}",
            composite_alarm_name=page_alarm_name(manifest, part), alarm_description=f"{manifest.name}: {why}",
            alarm_rule=cw.AlarmRule.any_of(*members))

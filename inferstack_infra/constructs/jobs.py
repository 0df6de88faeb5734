"""The asynchronous tier: jobs table, claim-check bucket, signing secret, queues with DLQs, event sources,
least-privilege grants and alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from inferstack.manifest import Manifest, resource_id
from inferstack.topology import WEBHOOK_QUEUE, QueueSpec, job_queue_key, jobs_environment, queues
from inferstack_infra.constructs.function import InferenceFunction

#: Alarm when the oldest job has waited longer than this.
OLDEST_MESSAGE_ALARM_S = 900


class JobTier(Construct):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest) -> None:
        super().__init__(scope, id)
        jobs = manifest.jobs
        self.table = dynamodb.Table(
            self, "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute="expires_at",
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self, "Payloads",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-inputs", prefix="inputs/", expiration=Duration.days(2)),
                s3.LifecycleRule(id="expire-results", prefix="results/",
                                 expiration=Duration.days(jobs.result_ttl_days + 1)),
                s3.LifecycleRule(id="abort-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.bucket).acknowledge(Acknowledgment(
            id="AwsSolutions-S1", reason="Holds transient job inputs and results, expired by lifecycle rules and "
            "reached only through the functions' roles; object-level audit is CloudTrail data events' job, "
            "not a second logging bucket per deployment"))
        self.secret = secretsmanager.Secret(
            self, "WebhookSecret",
            description=f"{manifest.name}: Standard Webhooks signing key (verifiers use whsec_ + base64(key))",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}", generate_string_key="key", exclude_punctuation=True,
                password_length=32),
        )
        Validations.of(self.secret).acknowledge(Acknowledgment(
            id="AwsSolutions-SMG4", reason="A webhook signing key is shared with every receiver: rotating it is an "
            "announced operation (Standard Webhooks lets receivers accept old and new signatures meanwhile), not "
            "an automatic schedule"))

        self.queues: dict[str, sqs.Queue] = {}
        self.specs: dict[str, QueueSpec] = {}
        for spec in sorted(queues(manifest), key=lambda q: q.dlq is not None):  # DLQs first
            dlq = sqs.DeadLetterQueue(max_receive_count=spec.max_receive_count or 1,
                                      queue=self.queues[spec.dlq]) if spec.dlq else None
            self.queues[spec.key] = sqs.Queue(
                self, f"{resource_id(spec.key)}Queue",
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
                retention_period=Duration.days(14 if spec.dlq is None else 4),
                dead_letter_queue=dlq,
            )
            self.specs[spec.key] = spec

        self.environment = jobs_environment(
            manifest, table=self.table.table_name, bucket=self.bucket.bucket_name,
            queue_urls={s.model: self.queues[s.key].queue_url for s in self.specs.values() if s.model},
            webhook_queue=self.queues[WEBHOOK_QUEUE].queue_url, secret_id=self.secret.secret_arn)

        self.alarms: list[cloudwatch.Alarm] = []
        #: The alarms of each queue, by its key (the monitoring construct groups a model's queues' alarms).
        self.queue_alarms: dict[str, list[cloudwatch.Alarm]] = {}
        for key, spec in self.specs.items():
            queue = self.queues[key]
            first = len(self.alarms)
            if spec.dlq:
                self.alarms.append(cloudwatch.Alarm(
                    self, f"{resource_id(key)}OldestMessage",
                    metric=queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(5),
                                                                          statistic="Maximum"),
                    threshold=OLDEST_MESSAGE_ALARM_S, evaluation_periods=3,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"{key}: the oldest message waited over {OLDEST_MESSAGE_ALARM_S} s"))
            else:
                self.alarms.append(cloudwatch.Alarm(
                    self, f"{resource_id(key)}Depth",
                    metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1),
                                                                               statistic="Maximum"),
                    threshold=1, evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"{key}: messages reached the dead-letter queue"))
            self.queue_alarms[key] = self.alarms[first:]
        CfnOutput(self, "WebhookSecretArn", value=self.secret.secret_arn,
                  description="aws secretsmanager get-secret-value --secret-id <arn>: {\"key\": K}; "
                  "receivers verify with whsec_ + base64(K)")

    def _object_grant(self, role: iam.IRole, action: str, prefix: str) -> None:
        iam.Grant.add_to_principal(grantee=role, actions=[action],
                                   resource_arns=[self.bucket.arn_for_objects(f"{prefix}/*")])
        bucket_id = Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        Validations.of(role).acknowledge(Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]",
            reason=f"Objects are named by job ID (unknown at deploy time); the grant is one action ({action}) on "
            f"the {prefix}/ prefix of this deployment's own bucket"))

    def connect(self, users: Sequence[InferenceFunction]) -> None:
        """Event sources and least-privilege grants for every function that uses the tier."""
        aliases = {f.spec.key: f.alias for f in users}
        for key, spec in self.specs.items():
            if spec.function and spec.function in aliases:
                aliases[spec.function].add_event_source(sources.SqsEventSource(
                    self.queues[key], batch_size=spec.batch_size,
                    max_batching_window=Duration.seconds(spec.batching_window_s) if spec.batching_window_s else None,
                    max_concurrency=spec.max_concurrency, report_batch_item_failures=True))
        webhook_queue = self.queues[WEBHOOK_QUEUE]
        for user in users:
            role, kind = user.role, user.spec.kind
            # Every state change after creation is a conditional UpdateItem; only the API function, which creates
            # jobs, batches and their idempotency keys, may put (and delete) items.
            self.table.grant(role, "dynamodb:GetItem", "dynamodb:UpdateItem")
            if kind == "api":
                self.table.grant(role, "dynamodb:PutItem", "dynamodb:DeleteItem")  # DeleteItem: frees the key of
                # a submission that failed
                for spec in self.specs.values():
                    if spec.model:
                        self.queues[spec.key].grant_send_messages(role)
                        self.queues[spec.key].grant(role, "sqs:GetQueueAttributes")
                self._object_grant(role, "s3:PutObject", "inputs")
                self._object_grant(role, "s3:GetObject", "results")
            elif kind == "webhooks":
                webhook_queue.grant_send_messages(role)  # retries go back with a delay
                self.secret.grant_read(role)
            elif kind in ("deadletter", "batch"):  # a batch's webhook, when it ends
                webhook_queue.grant_send_messages(role)
            else:  # a model's worker (its claims are conditional UpdateItems; a transient failure hands its
                # message back with ChangeMessageVisibility, which the event source's consume grant includes)
                webhook_queue.grant_send_messages(role)
                self._object_grant(role, "s3:GetObject", "inputs")
                self._object_grant(role, "s3:PutObject", "results")
                if user.spec.inference_component and user.spec.model:  # while its model scales out from zero,
                    # jobs go back to their queue as new messages (inferstack.jobs.deferral)
                    self.queues[job_queue_key(user.spec.model)].grant_send_messages(role)

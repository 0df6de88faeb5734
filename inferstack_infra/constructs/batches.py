"""Bulk scoring: the batch bucket and, per light model, a state machine whose Distributed Map scores a file's
chunks with the model's batch function.

    Plan (Lambda) -> ScoreChunks (Distributed Map: ItemReader = the plan's JSON array in S3, ItemBatcher with
    the model as BatchInput, MaxConcurrency, ToleratedFailurePercentage, ResultWriter; each child = one
    ScoreChunk Lambda call, retried with backoff and jitter) -> Finish (Lambda)
    Catch (Plan, ScoreChunks) -> Finish, with the error at $.error

`batch_definition` builds that chain; `render_definition` renders it as Amazon States Language for the local
twin (`inferstack_infra.local.batches`), which runs the very definition deployed here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aws_cdk import Acknowledgment, App, CfnResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from inferstack.manifest import Manifest, resource_id
from inferstack.topology import batches_environment
from inferstack_infra.constructs.function import InferenceFunction

#: Lambda errors worth retrying however often: throttling and the service's own hiccups.
THROTTLING = ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
              "Lambda.SdkClientException"]
#: Where the Distributed Map's ResultWriter puts its run's results, in the batch bucket.
RUNS_PREFIX = "runs"
EXECUTION_TIMEOUT = Duration.hours(24)
#: Without it, the DistributedMap renders the deprecated `resultWriter` prop and ignores `resultWriterV2`.
RESULT_WRITER_V2 = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"


def batch_definition(scope: Construct, *, model: str, function: lambda_.IFunction, bucket: s3.IBucket,
                     manifest: Manifest) -> sfn.IChainable:
    """The chain of one model's batch state machine (see the module's docstring)."""
    b = manifest.batches
    plan = tasks.LambdaInvoke(scope, "Plan", lambda_function=function, comment="split the input into chunks",
                              payload=sfn.TaskInput.from_object({"action": "plan",
                                                                 "batch": sfn.JsonPath.entire_payload}),
                              payload_response_only=True, result_path="$.plan", retry_on_service_exceptions=False)
    plan.add_retry(errors=THROTTLING, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2,
                   jitter_strategy=sfn.JitterType.FULL)
    score = tasks.LambdaInvoke(scope, "ScoreChunk", lambda_function=function, payload_response_only=True,
                               retry_on_service_exceptions=False, comment="score one chunk of rows")
    score.add_retry(errors=THROTTLING, interval=Duration.seconds(2), max_attempts=8, backoff_rate=2,
                    max_delay=Duration.seconds(60), jitter_strategy=sfn.JitterType.FULL)
    if b.max_attempts > 1:  # a crashed chunk (an error, a timeout, a lost environment) runs again, once more each
        score.add_retry(errors=["States.ALL"], interval=Duration.seconds(1), max_attempts=b.max_attempts - 1,
                        backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)
    chunks = sfn.DistributedMap(
        scope, "ScoreChunks", comment="score every chunk of the plan",
        item_reader=sfn.S3JsonItemReader(bucket=bucket, key=sfn.JsonPath.string_at("$.plan.key")),
        item_batcher=sfn.ItemBatcher(max_items_per_batch=1, batch_input={"model": model}),
        max_concurrency=manifest.batch_concurrency(manifest.model(model)),
        tolerated_failure_percentage=b.tolerated_failure_percentage,
        result_writer_v2=sfn.ResultWriterV2(bucket=bucket, prefix=RUNS_PREFIX),
        map_execution_type=sfn.StateMachineType.EXPRESS, result_path="$.map", label="chunks")
    chunks.item_processor(score)
    finish = tasks.LambdaInvoke(scope, "Finish", lambda_function=function, comment="manifest, end state, webhook",
                                payload=sfn.TaskInput.from_object({"action": "finish",
                                                                   "batch": sfn.JsonPath.entire_payload}),
                                payload_response_only=True, result_path="$.finish", retry_on_service_exceptions=True)
    finish.add_retry(errors=["States.ALL"], interval=Duration.seconds(2), max_attempts=3, backoff_rate=2,
                     jitter_strategy=sfn.JitterType.FULL)
    plan.add_catch(finish, errors=["States.ALL"], result_path="$.error")
    chunks.add_catch(finish, errors=["States.ALL"], result_path="$.error")
    return plan.next(chunks).next(finish)


def render_definition(manifest: Manifest, model: str, *, function_arn: str, bucket: str) -> dict[str, Any]:
    """The ASL of `model`'s state machine as CloudFormation would deploy it, with the function and the batch
    bucket named as given (the local twin passes its own)."""
    stack = Stack(App(), "Render")
    stack.node.set_context(RESULT_WRITER_V2, True)
    chain = batch_definition(stack, model=model, function=lambda_.Function.from_function_arn(stack, "Fn", function_arn),
                             bucket=s3.Bucket.from_bucket_name(stack, "Bucket", bucket), manifest=manifest)
    return rendered(stack, chain)


def rendered(stack: Stack, chain: sfn.IChainable) -> dict[str, Any]:
    """A chain's ASL as CloudFormation would deploy it (the partition as `aws`)."""
    machine = sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(chain))
    cfn = machine.node.default_child
    assert isinstance(cfn, sfn.CfnStateMachine)
    resolved = stack.resolve(cfn.definition_string)
    text = resolved if isinstance(resolved, str) else "".join(
        part if isinstance(part, str) else _literal(part) for part in resolved["Fn::Join"][1])
    definition: dict[str, Any] = json.loads(text)
    return definition


def _literal(token: dict[str, Any]) -> str:
    if token == {"Ref": "AWS::Partition"}:
        return "aws"
    raise ValueError(f"unexpected token in the definition: {token}")


class BatchTier(Construct):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest) -> None:
        super().__init__(scope, id)
        self.node.set_context(RESULT_WRITER_V2, True)  # before any child: the state machines read it
        self.manifest = manifest
        self.bucket = s3.Bucket(
            self, "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-uploads", prefix="uploads/", expiration=Duration.days(7)),
                s3.LifecycleRule(id="expire-plans", prefix="plans/", expiration=Duration.days(7)),
                s3.LifecycleRule(id="expire-runs", prefix=f"{RUNS_PREFIX}/", expiration=Duration.days(7)),
                s3.LifecycleRule(id="expire-transforms", prefix="transform/", expiration=Duration.days(7)),
                s3.LifecycleRule(id="expire-outputs", prefix="outputs/",
                                 expiration=Duration.days(manifest.jobs.result_ttl_days + 1)),
                s3.LifecycleRule(id="abort-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.bucket).acknowledge(Acknowledgment(
            id="AwsSolutions-S1", reason="Holds batch uploads, chunk plans and default outputs, expired by lifecycle "
            "rules and reached only through the batch functions, the API function's presigned uploads and the "
            "state machines; object-level audit is CloudTrail data events' job, not a second logging bucket"))
        self.inputs = [s3.Bucket.from_bucket_name(self, f"Input{i}", n)
                       for i, n in enumerate(manifest.batches.input_buckets)]
        self.outputs = [s3.Bucket.from_bucket_name(self, f"Output{i}", n)
                        for i, n in enumerate(manifest.batches.output_buckets)]
        self.machines: dict[str, sfn.StateMachine] = {}
        #: Heavy models, whose batches run a Batch Transform job (`add_transform_model`).
        self.transform_models: list[str] = []

    @property
    def environment(self) -> dict[str, str]:
        """What the batch functions are told (the API function also gets the state machines' ARNs)."""
        return batches_environment(self.manifest, bucket=self.bucket.bucket_name, state_machines={})

    def add_model(self, model: str, function: InferenceFunction) -> sfn.StateMachine:
        rid = resource_id(model)
        scope = Construct(self, rid)
        log_group = logs.LogGroup(scope, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            scope, "StateMachine", comment=f"inferstack: score a file with {model}, chunk by chunk",
            definition_body=sfn.DefinitionBody.from_chainable(batch_definition(
                scope, model=model, function=function.alias, bucket=self.bucket, manifest=self.manifest)),
            timeout=EXECUTION_TIMEOUT, tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        self.machines[model] = machine
        # the role is implied by GetAtt Role.Arn (cfn-lint W3005): depend on its policy only
        policy = machine.role.node.find_child("DefaultPolicy").node.default_child
        cfn_machine = machine.node.default_child
        assert isinstance(policy, CfnResource) and isinstance(cfn_machine, CfnResource)
        cfn_machine.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])
        self._grant_objects(function.role, "s3:GetObject", [self.bucket, *self.inputs])
        self._grant_objects(function.role, "s3:PutObject", [self.bucket, *self.outputs])
        iam.Grant.add_to_principal(grantee=function.role, actions=["s3:ListBucket"],  # the finishing step lists
                                   resource_arns=[b.bucket_arn for b in (self.bucket, *self.outputs)])  # outputs
        iam.Grant.add_to_principal(  # the ResultWriter's files (CDK grants only the ItemReader's GetObject)
            grantee=machine.role, resource_arns=[self.bucket.arn_for_objects(f"{RUNS_PREFIX}/*")],
            actions=["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"])
        machine_id = Stack.of(self).get_logical_id(machine.node.default_child)  # type: ignore[arg-type]
        executions = ('arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{"Fn::Select":[6,'
                      '{"Fn::Split":[":",{"Ref":"' + machine_id + '"}]}]}')
        for resource, reason in (
            (f"arn:<AWS::Partition>:s3:::<{self._bucket_id}>/*", "the Distributed Map's ItemReader reads the chunk "
             "plan of each batch, named by batch ID (unknown at deploy time), from the stack's batch bucket"),
            (f"<{self._bucket_id}.Arn>/{RUNS_PREFIX}/*", "the ResultWriter writes each map run's results under "
             f"{RUNS_PREFIX}/ of the batch bucket, named by run (unknown at deploy time)"),
            ("*", "CloudWatch Logs delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) and X-Ray tracing "
             "actions support no resource-level permissions"),
            (f"{executions}:*", "the Distributed Map describes and stops the executions of its own state machine, "
             "named by batch ID"),
            (f"{executions}/chunks:*", "the Distributed Map may redrive its own map runs (label chunks)"),
        ):
            Validations.of(machine).acknowledge(Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{resource}]",
                                                               reason=reason))
        return machine

    def add_transform_model(self, model: str, function: InferenceFunction, *, sagemaker_model: str,
                            role: iam.IRole) -> sfn.StateMachine:
        """A heavy model's batch state machine: its Batch Transform job (`constructs.transform`) runs the
        endpoint's SageMaker model (`sagemaker_model`, with its execution `role`)."""
        from inferstack_infra.constructs.transform import TRANSFORM_PREFIX, transform_definition

        scope = Construct(self, resource_id(model))
        log_group = logs.LogGroup(scope, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            scope, "StateMachine", comment=f"inferstack: score a file with {model} by a SageMaker Batch Transform job",
            definition_body=sfn.DefinitionBody.from_chainable(transform_definition(
                scope, model=model, function=function.alias, sagemaker_model=sagemaker_model, role=role,
                manifest=self.manifest)),
            timeout=EXECUTION_TIMEOUT, tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        self.machines[model] = machine
        self.transform_models.append(model)
        policy = machine.role.node.find_child("DefaultPolicy").node.default_child
        cfn_machine = machine.node.default_child
        assert isinstance(policy, CfnResource) and isinstance(cfn_machine, CfnResource)
        cfn_machine.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])
        # the batch function: reads the input and the job's .out file, writes the manifest file and the outputs
        self._grant_objects(function.role, "s3:GetObject", [self.bucket, *self.inputs])
        self._grant_objects(function.role, "s3:PutObject", [self.bucket, *self.outputs])
        iam.Grant.add_to_principal(grantee=function.role, actions=["s3:ListBucket"],
                                   resource_arns=[b.bucket_arn for b in (self.bucket, *self.outputs)])
        # the job, as the model's execution role: reads the manifest file and the input, writes its answers
        self._grant_objects(role, "s3:GetObject", [self.bucket, *self.inputs])
        self._grant_objects(role, "s3:PutObject", [self.bucket], f"{TRANSFORM_PREFIX}/*")
        for resource, reason in (
            ("arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:transform-job/*",
             "the state machine creates, describes and stops the Batch Transform jobs of its batches, named by "
             "batch ID (unknown at deploy time)"),
            ("*", "CloudWatch Logs delivery (logs:*LogDelivery, PutResourcePolicy, Describe*), X-Ray tracing and "
             "sagemaker:ListTags (which the .sync integration calls on the job) support no resource-level "
             "permissions"),
        ):
            Validations.of(machine).acknowledge(Acknowledgment(id=f"AwsSolutions-IAM5[Resource::{resource}]",
                                                               reason=reason))
        return machine

    @property
    def _bucket_id(self) -> str:
        return Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]

    def _grant_objects(self, role: iam.IRole, action: str, buckets: Sequence[s3.IBucket], suffix: str = "*") -> None:
        iam.Grant.add_to_principal(grantee=role, actions=[action],
                                   resource_arns=[b.arn_for_objects(suffix) for b in buckets])
        for b in buckets:
            resource = f"<{self._bucket_id}.Arn>/{suffix}" if b is self.bucket else \
                f"arn:<AWS::Partition>:s3:::{b.bucket_name}/{suffix}"
            Validations.of(role).acknowledge(Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{resource}]", reason=f"{action} on the objects of a bucket batches "
                "may use (the stack's batch bucket, or one the manifest names in batches.input_buckets / "
                "output_buckets): a batch's files are named by its user and its ID, unknown at deploy time"))

    def connect_api(self, api: InferenceFunction) -> None:
        """The API function starts batches, checks their input, and presigns uploads to the batch bucket."""
        for key, value in batches_environment(self.manifest, bucket=self.bucket.bucket_name, state_machines={
                m: sm.state_machine_arn for m, sm in self.machines.items()}).items():
            api.function.add_environment(key, value)
        for machine in self.machines.values():
            machine.grant_start_execution(api.role)
            machine.grant_execution(api.role, "states:DescribeExecution")  # GET ends a batch whose run died
            machine_id = Stack.of(self).get_logical_id(machine.node.default_child)  # type: ignore[arg-type]
            Validations.of(api.role).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                   'execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"' + machine_id + '"}]}]}:*]',
                reason="states:DescribeExecution on the executions of the batch state machines, named by batch ID "
                "(unknown at deploy time): GET /v1/batches/{id} ends a batch whose execution died"))
        if self.transform_models:  # DELETE /v1/batches/{id} stops a heavy batch's job (transform.job_name)
            jobs = Stack.of(self).format_arn(service="sagemaker", resource="transform-job",
                                             resource_name="inferstack-batch-*")
            iam.Grant.add_to_principal(grantee=api.role, actions=["sagemaker:StopTransformJob"], resource_arns=[jobs])
            Validations.of(api.role).acknowledge(Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
                   "transform-job/inferstack-batch-*]",
                reason="sagemaker:StopTransformJob on the Batch Transform jobs of batches, named by batch ID "
                "(unknown at deploy time): DELETE /v1/batches/{id} stops a heavy model's job"))
        self._grant_objects(api.role, "s3:GetObject", [self.bucket, *self.inputs, *self.outputs])  # probe, results
        self._grant_objects(api.role, "s3:PutObject", [self.bucket], "uploads/*")


__all__ = ["BatchTier", "batch_definition", "render_definition"]

"""A heavy model's batch state machine: its SageMaker Batch Transform job between two steps of its batch function.

    Plan (Lambda: count the lines, write the job's S3 manifest file) -> Transform (CreateTransformJob, .sync:
    the endpoint's own SageMaker model, so the same image and model data; SplitType Line, BatchStrategy
    MultiRecord, MaxPayloadInMB from the manifest, AssembleWith Line) -> Finish (Lambda: number the answers,
    write part/errors files, manifest, end state, webhook)
    Catch (Plan, Transform) -> Finish, with the error at $.error

The job's instances exist only while it runs: real-time traffic keeps its endpoint, and the endpoint is not
scaled for bulk work.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Duration, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from inferstack import env
from inferstack.manifest import Manifest
from inferstack_infra.constructs.batches import THROTTLING, rendered

JSONLINES = "application/jsonlines"
#: Where the jobs write their answers in the batch bucket (`inferstack.batches.transform.transform_prefix`).
TRANSFORM_PREFIX = "transform"


def transform_definition(scope: Construct, *, model: str, function: lambda_.IFunction, sagemaker_model: str,
                         role: iam.IRole, manifest: Manifest) -> sfn.IChainable:
    """The chain of a heavy model's batch state machine (see the module's docstring)."""
    b = manifest.batches
    instance_type = manifest.model(model).instance_type
    assert instance_type, f"heavy model {model} has no instance_type"
    plan = tasks.LambdaInvoke(scope, "Plan", lambda_function=function, comment="count the lines, write the "
                              "job's manifest file", payload=sfn.TaskInput.from_object(
                                  {"action": "plan", "batch": sfn.JsonPath.entire_payload}),
                              payload_response_only=True, result_path="$.plan", retry_on_service_exceptions=False)
    plan.add_retry(errors=THROTTLING, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2,
                   jitter_strategy=sfn.JitterType.FULL)
    transform = tasks.SageMakerCreateTransformJob(
        scope, "Transform", comment=f"score every line with {model} on instances of its own",
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        transform_job_name=sfn.JsonPath.string_at("$.plan.job_name"), model_name=sagemaker_model, role=role,
        transform_input=tasks.TransformInput(
            transform_data_source=tasks.TransformDataSource(s3_data_source=tasks.TransformS3DataSource(
                s3_uri=sfn.JsonPath.string_at("$.plan.manifest"), s3_data_type=tasks.S3DataType.MANIFEST_FILE)),
            content_type=JSONLINES, split_type=tasks.SplitType.LINE),
        transform_output=tasks.TransformOutput(s3_output_path=sfn.JsonPath.string_at("$.plan.output"),
                                               accept=JSONLINES, assemble_with=tasks.AssembleWith.LINE),
        transform_resources=tasks.TransformResources(
            instance_count=b.transform_instances, instance_type=ec2.InstanceType(instance_type.removeprefix("ml."))),
        batch_strategy=tasks.BatchStrategy.MULTI_RECORD, max_payload=Size.mebibytes(b.max_payload_mb),
        max_concurrent_transforms=b.transform_concurrency,
        environment={env.HEAVY_MAX_PAYLOAD_MB: str(b.max_payload_mb)}, result_path="$.transform",
        result_selector={"status": sfn.JsonPath.string_at("$.TransformJobStatus")})
    transform.add_retry(errors=["SageMaker.AmazonSageMakerException"], interval=Duration.seconds(30),
                        max_attempts=4, backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)  # e.g. capacity
    finish = tasks.LambdaInvoke(scope, "Finish", lambda_function=function, comment="number the answers, manifest, "
                                "end state, webhook", payload=sfn.TaskInput.from_object(
                                    {"action": "finish", "batch": sfn.JsonPath.entire_payload}),
                                payload_response_only=True, result_path="$.finish", retry_on_service_exceptions=True)
    finish.add_retry(errors=["States.ALL"], interval=Duration.seconds(2), max_attempts=3, backoff_rate=2,
                     jitter_strategy=sfn.JitterType.FULL)
    plan.add_catch(finish, errors=["States.ALL"], result_path="$.error")
    transform.add_catch(finish, errors=["States.ALL"], result_path="$.error")
    return plan.next(transform).next(finish)


def render_transform_definition(manifest: Manifest, model: str, *, function_arn: str) -> dict[str, Any]:
    """The ASL of a heavy model's batch state machine as deployed, with the function named as given and the
    model's own name as the SageMaker model (the local SageMaker knows its models by name)."""
    stack = Stack(App(), "Render")
    role = iam.Role.from_role_arn(stack, "Role", f"arn:aws:iam::000000000000:role/{model}-execution")
    function = lambda_.Function.from_function_arn(stack, "Fn", function_arn)
    chain = transform_definition(stack, model=model, function=function, sagemaker_model=model, role=role,
                                 manifest=manifest)
    return rendered(stack, chain)


__all__ = ["render_transform_definition", "transform_definition"]

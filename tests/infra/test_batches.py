"""Bulk scoring's deploy-time resources, and the local twin run on the very definition synthesized here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.batches.schemas import Chunk
from inferstack.batches.scorer import context, part_key
from inferstack_infra.local.states import Execution, Interpreter
from tests.functional.batches_world import make_world
from tests.infra.conftest import Synthesized


def by_type(s: Synthesized, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = s.template.find_resources(kind)
    return found


def machine(s: Synthesized, model: str = "Iris") -> tuple[str, dict[str, Any]]:
    ((key, sm),) = [(k, v) for k, v in by_type(s, "AWS::StepFunctions::StateMachine").items()
                    if k.startswith(f"Batches{model}")]
    return key, sm


def _part(p: Any, substitutions: dict[str, str]) -> str:
    if isinstance(p, str):
        return p
    if "Ref" in p:
        return substitutions[p["Ref"]]
    ((kind, (resource, attribute)),) = p.items()
    assert kind == "Fn::GetAtt"
    return substitutions[f"{resource}.{attribute}"]


def definition(s: Synthesized, substitutions: dict[str, str], model: str = "Iris") -> dict[str, Any]:
    """The state machine's ASL from the template, its references replaced (the function alias, the bucket)."""
    _, sm = machine(s, model)
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(_part(p, substitutions) for p in parts)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def logical_id(s: Synthesized, kind: str, prefix: str) -> str:
    (key,) = [k for k in by_type(s, kind) if k.startswith(prefix)]
    return key


@pytest.fixture(scope="module")
def asl(example: Synthesized) -> dict[str, Any]:
    return definition(example, {logical_id(example, "AWS::Lambda::Alias", "BatchIris"): "FN",
                                logical_id(example, "AWS::S3::Bucket", "BatchesBucket"): "BUCKET",
                                "AWS::Partition": "aws"})


def test_a_distributed_map_scores_the_plan_bounded_by_reserved_concurrency(asl: dict[str, Any]) -> None:
    assert asl["StartAt"] == "Plan"
    assert asl["States"]["Plan"]["Next"] == "ScoreChunks"
    chunks = asl["States"]["ScoreChunks"]
    assert chunks["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert chunks["ItemReader"] == {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                                    "Parameters": {"Bucket": "BUCKET", "Key.$": "$.plan.key"}}
    assert chunks["ItemBatcher"] == {"MaxItemsPerBatch": 1, "BatchInput": {"model": "iris"}}
    assert chunks["MaxConcurrency"] == 10  # batches.max_concurrency 10 <= iris's reserved_concurrency 50
    assert chunks["ResultWriter"]["Parameters"] == {"Bucket": "BUCKET", "Prefix": "runs"}
    assert chunks["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Finish"}]
    score = chunks["ItemProcessor"]["States"]["ScoreChunk"]
    throttling, crashes = score["Retry"]
    assert "Lambda.TooManyRequestsException" in throttling["ErrorEquals"] and throttling["JitterStrategy"] == "FULL"
    assert crashes == {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2,
                       "JitterStrategy": "FULL"}
    assert score["Resource"] == "FN" and asl["States"]["Finish"]["End"] is True


def test_the_batch_function_is_capped_and_the_machine_logged_and_traced(example: Synthesized) -> None:
    (fn,) = [f["Properties"] for f in by_type(example, "AWS::Lambda::Function").values()
             if f["Properties"]["Handler"] == "inferstack.functions.batch.handler.handler"]
    assert fn["ReservedConcurrentExecutions"] == 10 and fn["Timeout"] == 300 and fn["MemorySize"] == 1024
    _, sm = machine(example)
    assert sm["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert sm["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    assert sm["Properties"]["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_the_batch_bucket_is_encrypted_private_and_expiring(example: Synthesized) -> None:
    bucket = by_type(example, "AWS::S3::Bucket")[logical_id(example, "AWS::S3::Bucket", "BatchesBucket")]
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == \
        {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
    assert {r["Id"] for r in props["LifecycleConfiguration"]["Rules"]} >= {"expire-uploads", "expire-plans",
                                                                           "expire-runs", "expire-outputs"}


def statements(s: Synthesized, prefix: str) -> list[dict[str, Any]]:
    return [st for k, p in by_type(s, "AWS::IAM::Policy").items() if k.startswith(prefix)
            for st in p["Properties"]["PolicyDocument"]["Statement"]]


def test_only_the_api_starts_batches_and_the_batch_function_writes_outputs(example: Synthesized) -> None:
    sm_id, _ = machine(example)
    api = statements(example, "ApiRole")
    assert {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": sm_id}} in api
    (describe,) = [st for st in api if st["Action"] == "states:DescribeExecution"
                   and sm_id in json.dumps(st["Resource"])]
    assert ":execution:" in json.dumps(describe["Resource"])
    functions = by_type(example, "AWS::Lambda::Function").values()
    api_env = next(f["Properties"]["Environment"]["Variables"] for f in functions
                   if f["Properties"]["Handler"] == "inferstack.functions.api.handler.handler")
    assert "INFERSTACK_BATCH_STATE_MACHINES" in api_env and "INFERSTACK_BATCH_BUCKET" in api_env
    batch = statements(example, "BatchIrisRole")
    actions = {a for st in batch for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "dynamodb:UpdateItem", "sqs:SendMessage"} <= actions
    assert not any(a.endswith("*") for a in actions)
    others = [st for k in ("WorkerIris", "PredictIris") for st in statements(example, k)]
    assert not any(st["Action"] == "states:StartExecution" for st in others)


def test_the_twin_runs_the_synthesized_definition_and_retries_a_crashed_chunk(
        example: Synthesized, iris_model: Path) -> None:
    # GIVEN the definition as synthesized, pointed at a moto bucket and the real batch function in-process
    world = make_world(iris_model)
    try:
        asl = definition(example, {logical_id(example, "AWS::Lambda::Alias", "BatchIris"):
                                   "arn:aws:lambda:us-east-1:000000000000:function:batch-iris",
                                   logical_id(example, "AWS::S3::Bucket", "BatchesBucket"): world.bucket,
                                   "AWS::Partition": "aws"})
        crashed: list[int] = []

        def invoke(function: str, event: dict[str, Any]) -> tuple[Any, bool]:
            assert function == "batch-iris"
            if "Items" in event and event["Items"][0]["index"] == 1 and not crashed:
                # chunk 1's first attempt scores and writes its files, then its environment dies
                chunk = Chunk.model_validate(event["Items"][0])
                world.function.score_chunk(context(world.store.get(chunk.batch_id)), chunk)
                crashed.append(1)
                raise ConnectionError("the execution environment died")
            return world.function.handle(json.loads(json.dumps(event))), False

        rows = b"".join(json.dumps({"features": [5.1, 3.5, 1.4, 0.2 + i / 100]}).encode() + b"\n" for i in range(50))
        batch = world.submit(input=world.put("in/twin.jsonl", rows), rows_per_chunk=10)
        execution = Execution("arn:exec", batch.batch_id, world.state(batch))
        # WHEN the twin runs it
        Interpreter(asl, invoke=invoke, s3=world.clients.s3, time_scale=0).run(execution)
        # THEN the batch succeeds, chunk 1 ran twice, and every row has exactly one output line
        assert execution.status == "SUCCEEDED", execution.cause
        assert ("retry", "ScoreChunk", "Runtime.ExitError") in [h[:3] for h in execution.history]
        view = world.service.view(batch.batch_id, owner="key-a")
        assert view.status == "succeeded" and view.rows.succeeded == 50 and view.chunks.done == 5
        bucket, prefix = batch.output.removeprefix("s3://").split("/", 1)
        lines = [json.loads(line)["line"] for i in range(5) for line in world.clients.s3.get_object(
            Bucket=bucket, Key=part_key(prefix, i))["Body"].read().decode().splitlines()]
        assert lines == list(range(1, 51))
        result_manifest = execution.output["map"]["ResultWriterDetails"]
        assert result_manifest["Bucket"] == world.bucket and result_manifest["Key"].startswith("runs/")
    finally:
        world.aws.stop()

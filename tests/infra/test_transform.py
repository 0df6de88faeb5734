"""A heavy model's batch state machine: Plan -> SageMaker Batch Transform (.sync) of the endpoint's own model ->
Finish, as synthesized (cdk-nag runs at synth: the session fixture fails on any unacknowledged finding)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferstack.batches.schemas import BatchRequest
from inferstack.batches.scorer import part_key
from inferstack.batches.service import BatchService
from inferstack.batches.transform import TransformFunction
from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import ModelServer
from inferstack_infra.local.states import Execution, Interpreter
from inferstack_infra.local.transform import LocalTransform, TransformJobFailed
from inferstack_infra.packaging import stage_heavy_model
from tests.functional.batches_world import OWNER, make_world
from tests.functional.test_minilm import TEXTS, minilm_manifest
from tests.infra.conftest import Synthesized
from tests.infra.test_batches import by_type, definition, logical_id, machine, statements


@pytest.fixture(scope="module")
def asl(example: Synthesized) -> dict[str, Any]:
    model = logical_id(example, "AWS::SageMaker::Model", "HeavyMinilmModel")
    return definition(example, {logical_id(example, "AWS::Lambda::Alias", "BatchMinilm"): "FN",
                                f"{model}.ModelName": "SM_MODEL", "AWS::Partition": "aws"}, model="Minilm")


def test_plan_then_a_synchronous_transform_job_of_the_endpoints_model_then_finish(asl: dict[str, Any]) -> None:
    assert asl["StartAt"] == "Plan"
    assert asl["States"]["Plan"]["Next"] == "Transform" and asl["States"]["Plan"]["Resource"] == "FN"
    job = asl["States"]["Transform"]
    assert job["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    p = job["Parameters"]
    assert p["ModelName"] == "SM_MODEL" and p["TransformJobName.$"] == "$.plan.job_name"
    assert p["BatchStrategy"] == "MultiRecord" and p["MaxPayloadInMB"] == 6 and p["MaxConcurrentTransforms"] == 4
    assert p["TransformInput"] == {"DataSource": {"S3DataSource": {"S3Uri.$": "$.plan.manifest",
                                                                   "S3DataType": "ManifestFile"}},
                                   "ContentType": "application/jsonlines", "SplitType": "Line"}
    assert p["TransformOutput"] == {"S3OutputPath.$": "$.plan.output", "Accept": "application/jsonlines",
                                    "AssembleWith": "Line"}
    assert p["TransformResources"] == {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge"}
    assert p["Environment"] == {"INFERSTACK_MAX_PAYLOAD_MB": "6"}  # the container's JSON Lines body limit
    assert job["Next"] == "Finish"
    for state in ("Plan", "Transform"):
        assert asl["States"][state]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                                  "Next": "Finish"}]
    assert asl["States"]["Finish"]["End"] is True


def test_the_api_may_start_it_and_the_roles_are_scoped(example: Synthesized) -> None:
    sm_id, sm = machine(example, "Minilm")
    assert sm["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": sm_id}} in \
        statements(example, "ApiRole")
    # the API: stops the batches' jobs (DELETE), no other SageMaker control-plane action, no other job
    api = [st for st in statements(example, "ApiRole") if "sagemaker:" in json.dumps(st["Action"])]
    assert [st["Action"] for st in api] == ["sagemaker:StopTransformJob"]
    assert json.dumps(api[0]["Resource"]).endswith(':transform-job/inferstack-batch-*"]]}')
    # the state machine: the jobs (not any other SageMaker action), passing only the model's own role
    role = statements(example, "BatchesMinilmStateMachineRole")
    actions = {a for st in role for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {"sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
            "iam:PassRole", "lambda:InvokeFunction"} <= actions
    assert not any(a.startswith("sagemaker:") and a.endswith("*") for a in actions)
    jobs = [st for st in role if "sagemaker:CreateTransformJob" in st["Action"]]
    assert [":transform-job/*" in json.dumps(st["Resource"]) for st in jobs] == [True]
    (passrole,) = [st for st in role if st["Action"] == "iam:PassRole"]
    assert passrole["Resource"]["Fn::GetAtt"][0].startswith("HeavyMinilmExecutionRole")  # the endpoint model's
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "AmazonSageMakerFullAccess" not in json.dumps(by_type(example, "AWS::IAM::Role"))
    # the model's role: the job reads the manifest file and the input, writes only under transform/
    model_role = statements(example, "HeavyMinilmExecutionRole")
    (put,) = [st for st in model_role if st["Action"] == "s3:PutObject"]
    assert "/transform/*" in json.dumps(put["Resource"])
    # the batch function: no model, no inference layer, a timeout for pairing a whole file
    (fn,) = [f["Properties"] for f in by_type(example, "AWS::Lambda::Function").values()
             if f["Properties"]["Handler"] == "inferstack.functions.batch.transform.handler"]
    assert fn["Timeout"] == 900


@pytest.fixture(scope="module")
def minilm_server(tmp_path_factory: pytest.TempPathFactory, minilm_model: Path) -> Iterator[ModelServer]:
    manifest = minilm_manifest("heavy")
    model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest),
                                  tmp_path_factory.mktemp("minilm") / "model", dependencies=False)
    server = ModelServer("minilm", model_dir, log=lambda line: None)
    server.start()
    yield server
    server.stop()


def test_the_twin_runs_the_synthesized_definition_with_the_local_container_as_the_transform_job(
        example: Synthesized, iris_model: Path, minilm_server: ModelServer) -> None:
    # GIVEN the heavy definition as synthesized, a moto bucket, the real heavy batch function in-process and the
    # minilm container serving as the job's SageMaker model
    world = make_world(iris_model)
    try:
        settings = dataclasses.replace(world.settings, state_machines={"minilm": "arn:aws:states:::sm:minilm"})
        service = BatchService(settings, world.clients, world.store)
        function = TransformFunction(settings, world.clients, world.store, webhook_queue="")
        model = logical_id(example, "AWS::SageMaker::Model", "HeavyMinilmModel")
        asl = definition(example, {logical_id(example, "AWS::Lambda::Alias", "BatchMinilm"):
                                   "arn:aws:lambda:us-east-1:000000000000:function:batch-minilm",
                                   f"{model}.ModelName": "minilm-model", "AWS::Partition": "aws"}, model="Minilm")
        jobs: list[dict[str, Any]] = []

        def invoke(name: str, event: dict[str, Any]) -> tuple[Any, bool]:
            assert name == "batch-minilm"
            return function.handle(json.loads(json.dumps(event))), False

        def server_url(model_name: str) -> str:
            assert model_name == "minilm-model"
            return minilm_server.url

        local = LocalTransform(world.clients.s3, server_url)

        def transform(params: dict[str, Any]) -> dict[str, Any]:
            jobs.append(params)
            return local.run(params)

        texts = TEXTS[:12]
        lines = [json.dumps({"id": f"t{i}", "text": [t]}).encode() for i, t in enumerate(texts)]
        lines[3:3] = [b"{not json", b'{"text": "not a list"}']  # lines 4 and 5
        world.put("in/texts.jsonl.bak", b"not scored\n")  # next to the input: a prefix would take it too
        request = BatchRequest.model_validate({"model": "minilm", "input": world.put(
            "in/texts.jsonl", b"\n".join(lines) + b"\n"), "rows_per_chunk": 5})
        batch, _ = service.submit(request, owner=OWNER, version="v1")
        (started,) = [s for s in world.clients.executions.started if s["name"] == batch.batch_id]
        execution = Execution("arn:exec", batch.batch_id, json.loads(started["input"]))
        # WHEN the twin runs it
        Interpreter(asl, invoke=invoke, s3=world.clients.s3, time_scale=0, transform=transform).run(execution)
        # THEN one job ran, with the synthesized parameters, and the batch succeeded
        assert execution.status == "SUCCEEDED", execution.cause
        (job,) = jobs
        assert job["TransformJobName"] == f"inferstack-batch-{batch.batch_id}" and job["MaxPayloadInMB"] == 6
        view = service.view(batch.batch_id, owner=OWNER)
        assert view.status == "succeeded" and view.rows.total == 14
        assert (view.rows.succeeded, view.rows.failed, view.chunks.done) == (12, 2, 3)
        bucket, prefix = batch.output.removeprefix("s3://").split("/", 1)

        def read(key: str) -> list[dict[str, Any]]:
            body = world.clients.s3.get_object(Bucket=bucket, Key=prefix + key)["Body"].read().decode()
            return [json.loads(line) for line in body.splitlines()]

        outputs = [o for i in range(3) for o in read(part_key("", i))]
        errors = read(part_key("", 0, "errors"))  # both bad lines are in the first chunk (lines 1-5)
        # each text's line number, id and embedding equal to the container's own predict
        assert [o["line"] for o in outputs] == [1, 2, 3, *range(6, 15)]
        assert [o["id"] for o in outputs] == [f"t{i}" for i in range(12)]
        direct = httpx.post(f"{minilm_server.url}/invocations", json={"inputs": {"text": texts}}, timeout=60).json()
        np.testing.assert_allclose([o["outputs"]["embeddings"][0] for o in outputs],
                                   direct["outputs"]["embeddings"], atol=1e-5)
        assert [(e["line"], e["error"]["type"]) for e in errors] == [(4, "malformed-line"), (5, "invalid-input")]
        document = json.loads(world.clients.s3.get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())
        assert document["files"] == [part_key("", i) for i in range(3)] and document["status"] == "succeeded"
        assert document["errors"] == [part_key("", 0, "errors")]
    finally:
        world.aws.stop()


def test_the_local_job_packs_lines_into_payloads_and_fails_on_an_oversized_record() -> None:
    class S3:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def get_object(self, **_: Any) -> dict[str, Any]:
            return {"Body": io_body(self.data)}

    local = LocalTransform(S3(b"aaaa\nbb\ncccccc\nd"), lambda _: "")
    assert list(local._requests("b", "k", 8, "job")) == [b"aaaa\nbb\n", b"cccccc\n", b"d\n"]
    with pytest.raises(TransformJobFailed, match="over MaxPayloadInMB"):
        list(local._requests("b", "k", 6, "job"))


def io_body(data: bytes) -> Any:
    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))

"""A heavy model's batch state machine: Plan -> SageMaker Batch Transform (.sync) of the endpoint's own model ->
Finish, as synthesized (cdk-nag runs at synth: the session fixture fails on any unacknowledged finding)."""

from __future__ import annotations

import json
from typing import Any

import pytest

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

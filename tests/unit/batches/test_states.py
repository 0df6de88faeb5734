"""The local Step Functions interpreter on small definitions: retries, catches, tolerated failures, batching."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from inferstack_infra.local.states import Execution, Interpreter

FN = "arn:aws:lambda:us-east-1:000000000000:function:f"


class FakeS3:
    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = {k: json.dumps(v).encode() for k, v in objects.items()}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[f"{Bucket}/{Key}"])}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[f"{Bucket}/{Key}"] = Body


def machine(max_attempts: int = 2, tolerated: float = 0, per_batch: int = 2) -> dict[str, Any]:
    return {"StartAt": "Map", "States": {
        "Map": {"Type": "Map", "Next": "Done", "ResultPath": "$.map", "MaxConcurrency": 2,
                "ToleratedFailurePercentage": tolerated,
                "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                               "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
                "ItemBatcher": {"MaxItemsPerBatch": per_batch, "BatchInput": {"m": "x"}},
                "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b",
                                                                                            "Prefix": "runs"}},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                                  "StartAt": "T", "States": {"T": {
                                      "Type": "Task", "Resource": FN, "End": True,
                                      "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1,
                                                 "MaxAttempts": max_attempts, "BackoffRate": 2,
                                                 "JitterStrategy": "FULL"}]}}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}]},
        "Done": {"Type": "Task", "Resource": FN, "Parameters": {"done.$": "$"}, "ResultPath": "$.done",
                 "End": True}}}


def run(definition: dict[str, Any], invoke: Any, items: int = 5) -> Execution:
    s3 = FakeS3({"b/plan.json": list(range(items))})
    execution = Execution("arn:e", "e", {"key": "plan.json"})
    return Interpreter(definition, invoke=invoke, s3=s3, time_scale=0, rand=lambda: 0.5).run(execution)


def test_items_are_batched_with_the_batch_input_and_a_crash_is_retried() -> None:
    seen: list[Any] = []
    failed_once: set[int] = set()

    def invoke(name: str, event: dict[str, Any]) -> tuple[Any, bool]:
        assert name == "f"
        if "Items" in event:
            first = event["Items"][0]
            if first == 2 and first not in failed_once:
                failed_once.add(first)
                raise ConnectionError("died")
            seen.append(event)
            return {"n": len(event["Items"])}, False
        return "finished", False

    execution = run(machine(), invoke)
    assert execution.status == "SUCCEEDED"
    assert sorted(e["Items"][0] for e in seen) == [0, 2, 4] and all(e["BatchInput"] == {"m": "x"} for e in seen)
    assert ("retry", "T", "Runtime.ExitError", 0.5) in execution.history  # 1 s x FULL jitter (0.5)
    assert execution.output["done"] == "finished" and execution.output["map"]["MapRunArn"]


def test_a_chunk_failing_past_its_retries_fails_the_map_into_its_catch() -> None:
    def invoke(name: str, event: dict[str, Any]) -> tuple[Any, bool]:
        if "Items" in event and 4 in event["Items"]:
            return {"errorType": "ValueError", "errorMessage": "bad"}, True
        return {"event": event}, False

    execution = run(machine(max_attempts=1), invoke)
    assert execution.status == "SUCCEEDED"  # the Catch went on to Done
    error = execution.output["done"]["event"]["done"]["error"]
    assert error["Error"] == "States.ExceedToleratedFailureThreshold" and "ValueError" in error["Cause"]
    assert [h for h in execution.history if h[0] == "invoke" and h[1] == "T"].__len__() == 3 + 1  # 3 children, 1 retry


def test_tolerated_failures_let_the_map_succeed() -> None:
    def invoke(name: str, event: dict[str, Any]) -> tuple[Any, bool]:
        if "Items" in event and 4 in event["Items"]:
            return {"errorType": "ValueError", "errorMessage": "bad"}, True
        return {}, False

    assert run(machine(max_attempts=0, tolerated=50), invoke).output.get("error") is None


def test_unknown_fields_are_refused_not_ignored() -> None:
    definition = machine()
    definition["States"]["Map"]["ItemSelector"] = {"x.$": "$$.Map.Item.Value"}
    with pytest.raises(NotImplementedError, match="ItemSelector"):
        Interpreter(definition, invoke=lambda *_: ({}, False), s3=FakeS3({}))

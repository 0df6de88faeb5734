"""The heavy batch function's steps around a Batch Transform job, on moto: the job's output stands in as the
file SageMaker writes (`<input>.out`, one answer line per input line)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from inferstack.batches.schemas import BatchRequest
from inferstack.batches.service import BatchService
from inferstack.batches.store import Batch
from inferstack.batches.transform import TransformFunction, transform_prefix
from tests.functional.batches_world import OWNER, BatchesWorld, make_world


@pytest.fixture
def world(iris_model: Path) -> Iterator[BatchesWorld]:
    w = make_world(iris_model)
    yield w
    w.aws.stop()


def setup(world: BatchesWorld, lines: list[bytes]) -> tuple[BatchService, TransformFunction, Batch, dict[str, Any]]:
    settings = dataclasses.replace(world.settings, state_machines={"mlp": "arn:aws:states:::sm:mlp"})
    service = BatchService(settings, world.clients, world.store)
    function = TransformFunction(settings, world.clients, world.store)
    request = BatchRequest.model_validate({"model": "mlp", "input": world.put("in/rows.jsonl", b"\n".join(lines)),
                                           "rows_per_chunk": 2})
    batch, _ = service.submit(request, owner=OWNER, version="v1")
    (started,) = [s for s in world.clients.executions.started if s["name"] == batch.batch_id]
    return service, function, batch, json.loads(started["input"])


def test_plan_names_the_one_input_object_and_finish_numbers_the_answers(world: BatchesWorld) -> None:
    service, function, batch, state = setup(world, [b'{"x": 1}', b"{bad", b'{"id": "c", "x": 3}'])  # no final \n
    plan = function.handle({"action": "plan", "batch": state})
    assert plan["rows"] == 3 and plan["job_name"] == f"inferstack-batch-{batch.batch_id}"
    assert json.loads(world.get(plan["manifest"])) == [{"prefix": f"s3://{world.bucket}/in/"}, "rows.jsonl"]
    assert plan["output"] == f"s3://{world.bucket}/{transform_prefix(batch.batch_id)}"
    world.put(f"{transform_prefix(batch.batch_id)}rows.jsonl.out",
              b'{"outputs":{"y":[1]}}\n{"error":{"type":"malformed-line","detail":"not JSON"}}\n'
              b'{"id":"c","outputs":{"y":[3]}}\n')
    ended = function.handle({"action": "finish", "batch": {**state, "plan": plan}})
    assert ended == {"status": "succeeded", "rows": 2, "failed": 1}
    prefix = batch.output.removeprefix(f"s3://{world.bucket}/")
    parts = [json.loads(line) for i in range(2) for line in world.get(f"{prefix}part-{i:05d}.jsonl").splitlines()]
    assert parts == [{"line": 1, "outputs": {"y": [1]}}, {"line": 3, "id": "c", "outputs": {"y": [3]}}]
    assert [json.loads(line) for line in world.get(f"{prefix}errors-00000.jsonl").splitlines()] == [
        {"line": 2, "error": {"type": "malformed-line", "detail": "not JSON"}}]
    view = service.view(batch.batch_id, owner=OWNER)
    assert view.chunks.total == 2 and view.chunks.done == 2


def test_an_answer_file_short_of_lines_fails_the_batch_naming_both_counts(world: BatchesWorld) -> None:
    service, function, batch, state = setup(world, [b'{"x": 1}', b'{"x": 2}', b'{"x": 3}', b""])
    function.handle({"action": "plan", "batch": state})
    world.put(f"{transform_prefix(batch.batch_id)}rows.jsonl.out", b'{"outputs":{"y":[1]}}\n')
    assert function.handle({"action": "finish", "batch": state})["status"] == "failed"
    view = service.view(batch.batch_id, owner=OWNER)
    assert view.error is not None and view.error["type"] == "transform-output-mismatch"
    assert "1 lines for 3 input lines" in view.error["detail"]


def test_a_failed_job_fails_the_batch_with_its_reason(world: BatchesWorld) -> None:
    service, function, batch, state = setup(world, [b'{"x": 1}'])
    function.handle({"action": "plan", "batch": state})
    cause = json.dumps({"TransformJobStatus": "Failed", "FailureReason": "ClientError: a record is over 6 MB"})
    function.handle({"action": "finish", "batch": {**state, "error": {"Error": "States.TaskFailed", "Cause": cause}}})
    view = service.view(batch.batch_id, owner=OWNER)
    assert view.status == "failed" and view.error is not None and view.error["type"] == "States.TaskFailed"
    assert "over 6 MB" in view.error["detail"]


def test_a_batch_cancelled_before_its_job_starts_none_and_stays_cancelled(world: BatchesWorld) -> None:
    service, function, batch, state = setup(world, [b'{"x": 1}'])
    service.cancel(batch.batch_id, owner=OWNER)
    # Plan fails (no job is created): the state machine's Catch hands Finish the error, as a Lambda error
    with pytest.raises(Exception) as raised:
        function.handle({"action": "plan", "batch": state})
    error = {"Error": type(raised.value).__name__, "Cause": json.dumps({"errorMessage": str(raised.value)})}
    assert function.handle({"action": "finish", "batch": {**state, "error": error}})["status"] == "cancelled"
    view = service.view(batch.batch_id, owner=OWNER)
    assert view.status == "cancelled" and view.error is None and view.finished_at
    assert not world.clients.s3.list_objects_v2(Bucket=world.bucket, Prefix=f"plans/{batch.batch_id}/").get("Contents")


class TransformJobsStandIn:
    """SageMaker's StopTransformJob: the running jobs by name; an unknown or ended one is a ValidationException."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.stopped: list[str] = []

    def stop_transform_job(self, TransformJobName: str) -> dict[str, Any]:
        if TransformJobName not in self.running:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find job"}},
                              "StopTransformJob")
        self.running.discard(TransformJobName)
        self.stopped.append(TransformJobName)
        return {}


def test_cancel_while_its_job_runs_stops_the_job_and_the_batch_ends_cancelled_saying_so(
        world: BatchesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    service, function, batch, state = setup(world, [b'{"x": 1}', b'{"x": 2}', b'{"x": 3}'])
    plan = function.handle({"action": "plan", "batch": state})
    jobs = TransformJobsStandIn()
    jobs.running.add(plan["job_name"])  # the state machine's CreateTransformJob
    monkeypatch.setattr(world.clients, "sagemaker", jobs, raising=False)
    # WHEN the batch is cancelled while its job runs
    view = service.cancel(batch.batch_id, owner=OWNER, transform=True)
    # THEN the job is stopped, and the .sync task's failure (the job Stopped) ends the batch cancelled
    assert view.status == "cancelled" and jobs.stopped == [f"inferstack-batch-{batch.batch_id}"]
    cause = json.dumps({"TransformJobName": plan["job_name"], "TransformJobStatus": "Stopped"})
    ended = function.handle({"action": "finish", "batch": {**state, "plan": plan,
                                                          "error": {"Error": "States.TaskFailed", "Cause": cause}}})
    assert ended["status"] == "cancelled"
    view = service.view(batch.batch_id, owner=OWNER)
    assert view.status == "cancelled" and view.finished_at and view.error is not None
    assert view.error["type"] == "transform-stopped"
    assert f"job {plan['job_name']} ran: the job was Stopped before scoring all 3 lines" in view.error["detail"]
    prefix = batch.output.removeprefix(f"s3://{world.bucket}/")
    names = [o["Key"] for o in world.clients.s3.list_objects_v2(Bucket=world.bucket, Prefix=prefix)["Contents"]]
    assert names == [f"{prefix}_manifest.json"]  # no answers collected
    assert json.loads(world.get(f"{prefix}_manifest.json"))["status"] == "cancelled"


def test_cancel_with_no_job_to_stop_still_cancels_and_a_light_batch_stops_none(
        world: BatchesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = TransformJobsStandIn()
    monkeypatch.setattr(world.clients, "sagemaker", jobs, raising=False)
    service, _, batch, _ = setup(world, [b'{"x": 1}'])
    assert service.cancel(batch.batch_id, owner=OWNER, transform=True).status == "cancelled"  # ValidationException
    assert service.cancel(batch.batch_id, owner=OWNER, transform=True).status == "cancelled"  # again: no call
    service, _, light, _ = setup(world, [b'{"x": 2}'])
    jobs.running.add(f"inferstack-batch-{light.batch_id}")
    assert service.cancel(light.batch_id, owner=OWNER).status == "cancelled" and jobs.stopped == []


def test_cancel_answers_cancelled_when_sagemaker_cannot_be_reached(
        world: BatchesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable:
        def stop_transform_job(self, **_: Any) -> dict[str, Any]:
            raise ConnectionError("sagemaker unreachable")

    monkeypatch.setattr(world.clients, "sagemaker", Unreachable(), raising=False)
    service, _, batch, _ = setup(world, [b'{"x": 1}'])
    assert service.cancel(batch.batch_id, owner=OWNER, transform=True).status == "cancelled"

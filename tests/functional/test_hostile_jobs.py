"""The jobs tier against hostile jobs (moto server, the real worker): a job whose inputs are malformed fails at
once as invalid input; a job that makes the run raise fails on its own, after its retries, and every other job
of its batch, from any API key, completes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from inferstack.api.errors import to_problem
from inferstack.jobs.dead_letter import DeadLetterHandler
from inferstack.jobs.exceptions import IdempotencyInProgressError, JobNotFoundError, QueueFullError
from inferstack.jobs.schemas import JobRequest
from inferstack.jobs.service import IN_FLIGHT_S
from inferstack.jobs.store import TERMINAL, IdempotencyRecord
from inferstack.jobs.worker import InProcessRunner, Outcome
from tests.functional.jobs_world import World, make_world

ROWS = [[5.1, 3.5, 1.4, 0.2]]
POISON = 666.0


def submit(world: World, rows: Any, owner: str) -> str:
    job, _ = world.service.submit(JobRequest.model_validate({"model": "iris", "inputs": {"features": rows}}),
                                  owner=owner)
    return job.job_id


def run_worker(world: World, runner: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = world.receive("jobs-iris")
    response = world.worker(runner).handle(world.event("jobs-iris", messages))
    world.ack("jobs-iris", messages, response)
    return messages, response


class PoisonedRunner(InProcessRunner):
    """The real runner, but a run holding a poisonous job raises as a real one might (out of memory, a recursion
    past the limit, a bug): for the whole run it was part of."""

    def __init__(self, world: World, exc: type[BaseException]) -> None:
        super().__init__(world.predictor)
        self.exc = exc

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        if any(i["features"][0][0] == POISON for i in inputs):
            raise self.exc("poisoned")
        return super().run(inputs)


@pytest.mark.parametrize("exc", [MemoryError, RecursionError, KeyError])
def test_a_poisonous_job_fails_alone_and_the_batch_of_another_key_completes(world: World,
                                                                            exc: type[BaseException]) -> None:
    # GIVEN a valid job of one key and a poisonous job of another, in one SQS batch
    good = submit(world, ROWS, owner="key-a")
    bad = submit(world, [[POISON, 1, 1, 1]], owner="key-b")
    runner = PoisonedRunner(world, exc)
    # WHEN the worker runs the batch
    messages, response = run_worker(world, runner)
    # THEN only the poisonous job's record is reported for retry; the valid job succeeded
    assert len(messages) == 2
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [m["MessageId"] for m in messages if json.loads(m["Body"])["job_id"] == bad]
    assert world.service.view(good, owner="key-a").status == "succeeded"
    assert world.store.get(bad).status == "running"
    # AND after its retries (max_receive_count = 2) it lands in the DLQ and ends failed: no job stays running
    world.expire_visibility("jobs-iris", [m for m in messages if m["MessageId"] in failed])
    run_worker(world, runner)
    world.expire_visibility("jobs-iris", [m for m in messages if m["MessageId"] in failed])
    assert world.receive("jobs-iris") == []
    dead = world.receive("jobs-iris-dlq")
    DeadLetterHandler(world.store, world.sender).handle(world.event("jobs-iris-dlq", dead))
    job = world.service.view(bad, owner="key-b")
    assert job.status == "failed" and job.error is not None and job.error["type"] == "processing-failed"
    assert exc.__name__ in job.error["detail"] and "poisoned" not in job.error["detail"]  # no internals


def test_malformed_inputs_in_s3_fail_the_job_at_once(world: World) -> None:
    # GIVEN a job whose inputs travel through S3, and whose stored inputs are nested 100,000 deep
    job_id = submit(world, ROWS * 12000, owner="key-a")
    (message,) = world.receive("jobs-iris")
    ref = json.loads(message["Body"])["inputs_ref"]
    world.aws.client("s3").put_object(Bucket=world.settings.bucket, Key=ref, Body=b"[" * 100_000 + b"]" * 100_000)
    world.expire_visibility("jobs-iris", [message])
    # WHEN the worker runs it THEN it fails at once as invalid input, without a retry
    _, response = run_worker(world)
    assert response == {"batchItemFailures": []}
    job = world.store.get(job_id)
    assert job.status == "failed" and job.error is not None and job.error["type"] == "invalid-input"
    assert "nested too deeply" in job.error["detail"]


def test_an_unreadable_job_message_fails_its_job_instead_of_leaving_it_queued(world: World) -> None:
    # GIVEN a job, and a message for it that pydantic's JSON parser refuses (nested past its 200 levels)
    job_id = submit(world, ROWS, owner="key-a")
    (message,) = world.receive("jobs-iris")
    world.aws.client("sqs").delete_message(QueueUrl=world.aws.queue_urls["jobs-iris"],
                                           ReceiptHandle=message["ReceiptHandle"])
    body = json.dumps({"job_id": job_id, "model": "iris", "inputs": {"features": [[[[[]]]]]}})
    body = body.replace("[[[[[]]]]]", "[" * 300 + "]" * 300)
    world.aws.client("sqs").send_message(QueueUrl=world.aws.queue_urls["jobs-iris"], MessageBody=body)
    # WHEN the worker runs it THEN the job ends failed at once, not queued forever
    _, response = run_worker(world)
    assert response == {"batchItemFailures": []}
    job = world.store.get(job_id)
    assert job.status in TERMINAL and job.error is not None and job.error["type"] == "invalid-input"


def _idem_items(world: World) -> list[dict[str, Any]]:
    items = world.aws.client("dynamodb").scan(TableName=world.aws.table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("idem#")]


def keyed(world: World, key: str, rows: Any = ROWS) -> tuple[str, bool]:
    job, created = world.service.submit(JobRequest.model_validate({"model": "iris", "inputs": {"features": rows}}),
                                        owner="key-a", idempotency_key=key)
    return job.job_id, created


def test_a_submission_refused_for_a_full_queue_leaves_its_key_free(iris_model: Path) -> None:
    world = make_world(iris_model, settings_overrides={"max_queue_depth": 1})
    try:
        submit(world, ROWS, owner="key-b")  # fills the queue
        world.service._depth.clear()  # a fresh depth reading (they are cached for 2 s)
        with pytest.raises(QueueFullError):
            keyed(world, "order-1")
        assert _idem_items(world) == []
        # WHEN the queue drains THEN the client's retry with the same key is a fresh submission
        run_worker(world)
        world.service._depth.clear()
        job_id, created = keyed(world, "order-1")
        assert created and world.store.get(job_id).status == "queued"
    finally:
        world.aws.stop()


def test_a_failed_store_releases_the_key(world: World) -> None:
    store = world.service.store
    original = store.create

    def unavailable(job: Any) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                          "PutItem")

    store.create = unavailable  # type: ignore[method-assign]
    with pytest.raises(ClientError):
        keyed(world, "order-2")
    assert _idem_items(world) == []
    store.create = original  # type: ignore[method-assign]
    job_id, created = keyed(world, "order-2")
    assert created and world.store.get(job_id).status == "queued"


def test_a_key_whose_job_does_not_exist_is_unclaimed_once_no_submission_can_be_in_flight(world: World) -> None:
    # GIVEN a key left behind by a submission that died before storing its job (its release failed too)
    stale = IdempotencyRecord("0" * 32, "whatever", 0)
    world.aws.client("dynamodb").put_item(TableName=world.aws.table, Item={
        "pk": {"S": "idem#key-a#order-3"}, "job_id": {"S": stale.job_id}, "request_hash": {"S": "x"},
        "claimed_at": {"N": str(int(time.time()) - IN_FLIGHT_S - 1)}})
    # WHEN the client retries with the key THEN it gets a new job
    job_id, created = keyed(world, "order-3")
    assert created and world.store.get(job_id).status == "queued"
    assert keyed(world, "order-3") == (job_id, False)  # and the key now holds it
    # BUT a key claimed a moment ago, whose job is not stored yet, is a submission in flight: 409, retry
    world.aws.client("dynamodb").put_item(TableName=world.aws.table, Item={
        "pk": {"S": "idem#key-a#order-4"}, "job_id": {"S": stale.job_id}, "request_hash": {"S": "x"},
        "claimed_at": {"N": str(int(time.time()))}})
    with pytest.raises(IdempotencyInProgressError) as info:
        keyed(world, "order-4")
    assert to_problem(info.value).status == 409 and to_problem(info.value).headers == {"Retry-After": "1"}


@pytest.mark.parametrize("job_id", ["x" * 3000, "../../etc/passwd", "0" * 31, "A" * 32, "%00"])
def test_a_job_id_that_cannot_be_one_is_a_404_without_a_store_lookup(world: World, job_id: str) -> None:
    world.calls.clear()
    with pytest.raises(JobNotFoundError) as info:
        world.service.view(job_id, owner="key-a")
    assert world.calls == [] and len(info.value.job_id) <= 64
    assert to_problem(info.value).status == 404

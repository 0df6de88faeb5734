"""Transient failures in the worker cost seconds, not the visibility timeout; each job's claim is its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from inferstack.jobs.backoff import CAP_S, retry_delay_s
from inferstack.jobs.schemas import JobRequest
from tests.functional.jobs_world import World, make_world

OWNER = "key-owner"


@pytest.fixture
def world(iris_model: Path) -> Iterator[World]:
    w = make_world(iris_model, max_receive_count=5)  # visibility timeout: 6 x 60 s
    yield w
    w.aws.stop()


class StoreFault:
    """Fails DynamoDB UpdateItem calls (all, or those on the given jobs) as a throttled table does."""

    def __init__(self, world: World, job_ids: set[str] | None = None) -> None:
        self.active, self.job_ids, self.failed = True, job_ids, 0
        world.clients.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key", {}).get("pk", {}).get("S", "")
        if self.active and (self.job_ids is None or key.removeprefix("job#") in self.job_ids):
            self.failed += 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                              "UpdateItem")


def submit(world: World) -> str:
    body = JobRequest.model_validate({"model": "iris", "inputs": {"features": [[5.1, 3.5, 1.4, 0.2]]}})
    return world.service.submit(body, owner=OWNER)[0].job_id


def receive_until(world: World, n: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Long-poll the job queue until `n` messages came back (or the time is up)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    sqs = world.aws.client("sqs")
    while len(got) < n and time.monotonic() < deadline:
        got += sqs.receive_message(QueueUrl=world.aws.queue_urls["jobs-iris"], MaxNumberOfMessages=10,
                                   WaitTimeSeconds=1, AttributeNames=["All"]).get("Messages", [])
    return got


def test_retry_delay_grows_with_each_delivery_is_jittered_and_capped() -> None:
    assert [retry_delay_s(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert [retry_delay_s(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_delay_s(40, lambda: 1.0) == CAP_S and retry_delay_s(0, lambda: 0.0) >= 1


def test_a_store_failure_costs_seconds_then_every_job_succeeds_once(world: World) -> None:
    # GIVEN three jobs, and a store that throttles every update while their first batch runs
    ids = [submit(world) for _ in range(3)]
    messages = world.receive("jobs-iris")
    fault = StoreFault(world)
    response = world.worker().handle(world.event("jobs-iris", messages))
    world.ack("jobs-iris", messages, response)
    # THEN every record is reported failed and no job moved on
    assert len(response["batchItemFailures"]) == 3 and fault.failed >= 3
    assert {world.store.get(i).status for i in ids} == {"queued"}
    assert world.receive("jobs-iris") == []  # not at once: each waits its short delay
    # WHEN the fault clears, the messages come back in seconds (the queue's visibility timeout is 360 s)
    fault.active = False
    began = time.monotonic()
    again = receive_until(world, 3)
    assert len(again) == 3 and time.monotonic() - began < 30
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    response = world.worker().handle(world.event("jobs-iris", again))
    world.ack("jobs-iris", again, response)
    # THEN each job succeeded, once, with the failure noted in neither its result nor its attempts
    assert response == {"batchItemFailures": []}
    jobs = [world.store.get(i) for i in ids]
    assert {j.status for j in jobs} == {"succeeded"} and {j.attempts for j in jobs} == {1}


def test_one_jobs_failed_claim_is_retried_alone(world: World) -> None:
    # GIVEN a batch of three jobs where the store refuses only one job's claim
    ids = [submit(world) for _ in range(3)]
    messages = world.receive("jobs-iris")
    StoreFault(world, {ids[1]})
    response = world.worker().handle(world.event("jobs-iris", messages))
    world.ack("jobs-iris", messages, response)
    # THEN the two others ran; only the refused one is reported, and it returns within seconds
    (failure,) = response["batchItemFailures"]
    assert ids[1] in next(m["Body"] for m in messages if m["MessageId"] == failure["itemIdentifier"])
    assert [world.store.get(i).status for i in ids] == ["succeeded", "queued", "succeeded"]
    (again,) = receive_until(world, 1)
    assert ids[1] in again["Body"]

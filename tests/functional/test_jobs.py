"""The jobs tier's run-time objects against a moto server: submit, worker, dead letters, webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.jobs.dead_letter import DeadLetterHandler
from inferstack.jobs.exceptions import (
    IdempotencyConflictError,
    JobNotFoundError,
    QueueFullError,
    UnsafeWebhookUrlError,
)
from inferstack.jobs.schemas import JobRequest
from inferstack.jobs.worker import Errored, InProcessRunner, Outcome
from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.functional.jobs_world import World, make_world

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
OWNER = "key-owner"


def submit(world: World, rows: Any = ROWS, *, url: str | None = None, key: str | None = None,
           owner: str = OWNER) -> str:
    body = JobRequest.model_validate({"model": "iris", "inputs": {"features": rows},
                                      **({"webhook": {"url": url}} if url else {})})
    job, _ = world.service.submit(body, owner=owner, idempotency_key=key)
    return job.job_id


def run_worker(world: World, runner: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = world.receive("jobs-iris")
    response = world.worker(runner).handle(world.event("jobs-iris", messages))
    world.ack("jobs-iris", messages, response)
    return messages, response


def test_submit_run_store_and_signed_webhook(world: World, receiver: WebhookReceiver) -> None:
    # GIVEN a job with a webhook WHEN the worker and the webhook function run
    job_id = submit(world, url=receiver.url)
    assert world.service.view(job_id, owner=OWNER).status == "queued"
    _, response = run_worker(world)
    assert response == {"batchItemFailures": []}
    assert world.deliver_webhooks() == [job_id]
    # THEN the result is stored, equal to a direct run, and the receiver verified the signature
    view = world.service.view(job_id, owner=OWNER)
    assert view.status == "succeeded" and view.attempts == 1
    expected = world.predictor.predict({"features": ROWS})
    assert view.result == expected
    # AND the job records the model version that ran it, in the job and in its webhook
    assert view.model_version == world.predictor.version and len(view.model_version) == 12
    (delivery,) = receiver.verified()
    assert delivery.webhook_id == f"msg_{job_id}"
    assert delivery.payload["type"] == "job.succeeded" and delivery.payload["data"]["result"] == expected
    assert delivery.payload["data"]["model_version"] == world.predictor.version
    assert view.webhook.status == "delivered" and [a.status_code for a in view.webhook.attempts] == [200]


def test_job_is_visible_only_to_its_key(world: World) -> None:
    job_id = submit(world)
    with pytest.raises(JobNotFoundError):
        world.service.view(job_id, owner="someone-else")


def test_idempotent_resubmission_and_conflict(world: World) -> None:
    first = submit(world, key="order-7")
    assert submit(world, key="order-7") == first
    assert len(world.receive("jobs-iris")) == 1  # enqueued once
    with pytest.raises(IdempotencyConflictError) as info:
        submit(world, rows=[[1, 2, 3, 4]], key="order-7")
    assert info.value.job_id == first
    assert submit(world, key="order-7", owner="other-key") != first  # keys are per API key


def test_a_batch_holding_a_finished_job_still_claims_the_others(world: World) -> None:
    done, fresh = submit(world), submit(world)
    messages = world.receive("jobs-iris")
    first = [m for m in messages if done in m["Body"]]
    world.worker().handle(world.event("jobs-iris", first))
    # WHEN the finished job's message comes again in one batch with a new job
    response = world.worker().handle(world.event("jobs-iris", messages))
    # THEN the new job runs and the finished one is left as it was
    assert response == {"batchItemFailures": []}
    assert world.store.get(fresh).status == "succeeded" and world.store.get(done).attempts == 1


def test_the_same_message_delivered_twice_gives_one_result(world: World, receiver: WebhookReceiver) -> None:
    job_id = submit(world, url=receiver.url)
    messages = world.receive("jobs-iris")
    event = world.event("jobs-iris", messages)
    world.worker().handle(event)
    first = world.store.get(job_id)
    # WHEN the very same batch arrives again (at-least-once delivery)
    assert world.worker().handle(event) == {"batchItemFailures": []}
    again = world.store.get(job_id)
    # THEN nothing changes: one terminal state, one result, one webhook
    assert (again.status, again.finished_at, again.result, again.attempts) == \
        (first.status, first.finished_at, first.result, 1)
    world.deliver_webhooks()
    assert len(receiver.deliveries) == 1


class Dies:
    """A runner whose process dies in the middle of the batch (after the jobs were claimed)."""

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        raise SystemExit("worker killed")


def test_worker_dying_mid_batch_then_redelivery_completes_once(world: World) -> None:
    ids = [submit(world) for _ in range(3)]
    messages = world.receive("jobs-iris")
    with pytest.raises(SystemExit):
        world.worker(Dies()).handle(world.event("jobs-iris", messages))
    assert {world.store.get(i).status for i in ids} == {"running"}
    # the messages were not deleted: after the visibility timeout they come back
    world.expire_visibility("jobs-iris", messages)
    _, response = run_worker(world)
    assert response == {"batchItemFailures": []}
    jobs = [world.store.get(i) for i in ids]
    assert [j.status for j in jobs] == ["succeeded"] * 3
    assert [j.attempts for j in jobs] == [2, 2, 2]
    assert world.receive("jobs-iris") == []


def test_bad_input_fails_the_job_at_once_without_retry(world: World, receiver: WebhookReceiver) -> None:
    good = submit(world)
    bad = submit(world, rows=[[1, 2, 3]], url=receiver.url)
    _, response = run_worker(world)
    assert response == {"batchItemFailures": []}  # nothing to retry
    failed = world.service.view(bad, owner=OWNER)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error is not None and failed.error["type"] == "invalid-input"
    assert "dimension 1 must be 4, got 3" in failed.error["detail"]
    assert world.service.view(good, owner=OWNER).status == "succeeded"
    world.deliver_webhooks()
    assert receiver.verified()[0].payload["type"] == "job.failed"


class AlwaysBroken:
    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return [Errored("RuntimeError: GPU fell off the bus") for _ in inputs]


def test_transient_failures_retry_then_dead_letter_marks_the_job_failed(world: World,
                                                                          receiver: WebhookReceiver) -> None:
    job_id = submit(world, url=receiver.url)
    for _ in range(2):  # maxReceiveCount = 2
        messages, response = run_worker(world, AlwaysBroken())
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[0]["MessageId"]]
        assert world.store.get(job_id).status == "running"
        world.expire_visibility("jobs-iris", messages)
    # the third receive finds the message moved to the DLQ by the queue's redrive policy
    assert world.receive("jobs-iris") == []
    dead = world.receive("jobs-iris-dlq")
    assert len(dead) == 1
    DeadLetterHandler(world.store, world.sender).handle(world.event("jobs-iris-dlq", dead))
    job = world.service.view(job_id, owner=OWNER)
    assert job.status == "failed" and job.attempts == 2
    assert job.error == {"type": "processing-failed",
                         "detail": "gave up after 2 attempt(s): TransientJobError: RuntimeError: GPU fell off the bus"}
    world.deliver_webhooks()
    assert receiver.verified()[0].payload["data"]["error"]["type"] == "processing-failed"


def test_one_vectorised_call_per_batch_with_each_job_getting_its_rows(world: World) -> None:
    batches = [[[5.1, 3.5, 1.4, 0.2]], [[6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], [[4.9, 3.0, 1.4, 0.2]] * 3]
    ids = [submit(world, rows) for rows in batches for _ in range(3)]  # 9 jobs
    runner = InProcessRunner(world.predictor)
    run_worker(world, runner)
    assert runner.calls == 1
    for job_id, rows in zip(ids, [r for r in batches for _ in range(3)], strict=True):
        result = world.store.get(job_id).result
        expected = world.predictor.predict({"features": rows})
        assert result["label"] == expected["label"]
        np.testing.assert_allclose(result["probabilities"], expected["probabilities"], rtol=1e-6)


def test_large_inputs_travel_through_s3(world: World) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2]] * 12000  # ~250 KB of JSON: over the inline limit
    job_id = submit(world, rows)
    (message,) = world.receive("jobs-iris")
    assert '"inputs_ref":"inputs/' in message["Body"] and len(message["Body"]) < 500
    world.expire_visibility("jobs-iris", [message])
    run_worker(world)
    job = world.store.get(job_id)
    assert job.result is None and job.result_ref == f"results/{job_id}.json"  # the result went to S3 too
    assert len(world.service.view(job_id, owner=OWNER).result["label"]) == 12000


def test_submission_is_refused_past_the_queue_depth_limit(iris_model: Path) -> None:
    world = make_world(iris_model, settings_overrides={"max_queue_depth": 2})
    try:
        submit(world)
        submit(world)
        world.service._depth.clear()  # a fresh reading, as after the cache interval
        with pytest.raises(QueueFullError, match="2 jobs waiting"):
            submit(world)
    finally:
        world.aws.stop()


def test_webhook_500_then_200_is_delivered_on_retry(world: World, receiver: WebhookReceiver) -> None:
    receiver.script = [500, 200]
    job_id = submit(world, url=receiver.url)
    run_worker(world)
    world.deliver_webhooks()
    assert world.store.get(job_id).webhook_status == "pending"
    world.deliver_webhooks()  # the retry, sent back to the queue with its backoff delay
    job = world.service.view(job_id, owner=OWNER)
    assert job.webhook.status == "delivered"
    assert [a.status_code for a in job.webhook.attempts] == [500, 200]
    assert {d.webhook_id for d in receiver.deliveries} == {f"msg_{job_id}"}  # stable across retries
    assert job.result is not None


def test_webhook_410_stops_delivery(world: World, receiver: WebhookReceiver) -> None:
    receiver.script = [410]
    job_id = submit(world, url=receiver.url)
    run_worker(world)
    world.deliver_webhooks()
    assert world.deliver_webhooks() == []  # nothing re-enqueued
    job = world.service.view(job_id, owner=OWNER)
    assert job.webhook.status == "gone" and len(job.webhook.attempts) == 1
    assert job.status == "succeeded" and job.result is not None  # the result is never lost


def test_retry_after_is_honoured(world: World, receiver: WebhookReceiver) -> None:
    receiver.script = [(503, {"Retry-After": "7"})]
    job_id = submit(world, url=receiver.url)
    run_worker(world)
    world.deliver_webhooks()
    (attempt,) = world.service.view(job_id, owner=OWNER).webhook.attempts
    assert attempt.status_code == 503 and attempt.next_in_s == 7
    assert world.receive("webhooks") == []  # delayed: not visible yet


def test_redirects_are_not_followed(world: World, receiver: WebhookReceiver) -> None:
    receiver.script = [(302, {"Location": "http://169.254.169.254/"})]
    job_id = submit(world, url=receiver.url)
    run_worker(world)
    world.deliver_webhooks()
    (attempt,) = world.service.view(job_id, owner=OWNER).webhook.attempts
    assert attempt.status_code == 302 and "redirects are not followed" in (attempt.error or "")
    assert len(receiver.deliveries) == 1


def test_webhook_gives_up_after_max_attempts(world: World, receiver: WebhookReceiver) -> None:
    receiver.script = [500] * 10
    job_id = submit(world, url=receiver.url)
    run_worker(world)
    for _ in range(6):
        world.deliver_webhooks()
    job = world.service.view(job_id, owner=OWNER)
    assert job.webhook.status == "failed" and len(job.webhook.attempts) == 4  # webhook_max_attempts
    assert job.status == "succeeded" and job.result is not None


def test_ssrf_urls_are_refused_at_submit(iris_model: Path) -> None:
    strict = make_world(iris_model, allow_loopback=False)
    try:
        for url in ("http://93.184.216.34/", "https://127.0.0.1/", "https://10.0.0.8/",
                    "https://169.254.169.254/", "https://[::1]/", "https://localhost/"):
            with pytest.raises(UnsafeWebhookUrlError):
                submit(strict, url=url)
        assert strict.receive("jobs-iris") == []  # nothing enqueued
    finally:
        strict.aws.stop()


def test_dns_rebinding_is_caught_at_send_time(iris_model: Path) -> None:
    # GIVEN a host that resolves to a public address at submit and to loopback at send time
    answers = {"hooks.example.com": ["93.184.216.34"]}
    world = make_world(iris_model, resolve=lambda host, port: answers[host], allow_loopback=False)
    try:
        job_id = submit(world, url="https://hooks.example.com/h")
        run_worker(world)
        answers["hooks.example.com"] = ["127.0.0.1"]
        world.deliver_webhooks()
        job = world.service.view(job_id, owner=OWNER)
        (attempt,) = job.webhook.attempts
        assert job.webhook.status == "failed" and attempt.status_code is None
        assert "refused at send time" in (attempt.error or "") and "loopback" in (attempt.error or "")
    finally:
        world.aws.stop()


def test_aws_calls_per_job_on_the_happy_path(world: World, receiver: WebhookReceiver) -> None:
    # GIVEN ten jobs with webhooks, counted from submit to delivered webhook with botocore's event hooks (the
    # clock stands still, so the queue depth read stays cached however slowly this machine submits)
    world.service.clock = lambda: 0.0
    ids = [submit(world, url=receiver.url) for _ in range(10)]
    run_worker(world)
    world.deliver_webhooks()
    assert all(world.store.get(i).webhook_status == "delivered" for i in ids)
    calls = [c for c in world.calls if not c.startswith(("dynamodb.GetItem", "sqs.ReceiveMessage",
                                                         "sqs.DeleteMessage"))]
    # submit: PutItem + SendMessage (queue depth read once, cached); worker: one conditional UpdateItem claims
    # each job (no transaction: half the write units), one UpdateItem finishes each job, webhooks are enqueued
    # ten a call; webhook function: one UpdateItem per attempt, the secret read once
    assert calls.count("dynamodb.PutItem") == 10 and calls.count("sqs.SendMessage") == 10
    assert "dynamodb.TransactWriteItems" not in calls and calls.count("dynamodb.UpdateItem") == 30
    assert calls.count("sqs.SendMessageBatch") == 1
    assert calls.count("sqs.GetQueueAttributes") == 1 and calls.count("secretsmanager.GetSecretValue") == 1
    assert len(calls) == 53, calls  # 5.3 a job


def test_a_job_that_cannot_be_enqueued_fails_and_frees_its_key(iris_model: Path) -> None:
    # GIVEN a queue that cannot be reached at submit time (its URL points nowhere)
    world = make_world(iris_model)
    try:
        good_url = world.settings.queues["iris"]
        world.service.queue_depth("iris")  # a fresh depth reading, so that only SendMessage meets the bad URL
        world.service.settings.queues["iris"] = good_url + "-gone"
        with pytest.raises(Exception, match=r"NonExistentQueue|QueueDoesNotExist"):
            submit(world, key="retry-me")
        # THEN the stored job is failed (never left queued) and the key is free for the retry
        items = world.aws.client("dynamodb").scan(TableName=world.aws.table)["Items"]
        (stored,) = [i for i in items if i["pk"]["S"].startswith("job#")]
        assert stored["status"]["S"] == "failed" and stored["error"]["M"]["type"]["S"] == "not-enqueued"
        assert not [i for i in items if i["pk"]["S"].startswith("idem#")]
        world.service.settings.queues["iris"] = good_url
        job_id = submit(world, key="retry-me")
        assert world.store.get(job_id).status == "queued"
        assert len(world.receive("jobs-iris")) == 1
    finally:
        world.aws.stop()

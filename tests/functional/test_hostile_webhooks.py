"""Hostile webhook receivers (moto server, the real webhook and dead-letter handlers, receivers on loopback): an
attempt ends at its total deadline however slowly a receiver drips its answer, reads nothing of the receiver's
body, delays no other tenant's webhook, and a webhook whose messages end in the webhooks DLQ ends `failed`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferstack.jobs.dead_letter import DeadLetterHandler
from inferstack.jobs.exceptions import UnsafeWebhookUrlError
from inferstack.jobs.schemas import JobRequest, WebhookMessage
from inferstack.jobs.webhooks import WebhookHandler
from inferstack_infra.local.webhook_receiver import WebhookReceiver
from tests.functional.jobs_world import World, make_world

DEADLINE_S = 2.0
ROWS = [[5.1, 3.5, 1.4, 0.2]]


class HostileReceiver:
    """A receiver that reads the request, then drips `answer` one byte every `every_s` seconds, and records
    how many bytes it got out before the sender hung up."""

    def __init__(self, answer: bytes, every_s: float = 0.2, chunk: int = 1) -> None:
        self.answer, self.every_s, self.chunk = answer, every_s, chunk
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.sent: list[int] = []
        self.hung_up = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        sent = 0
        with conn:
            conn.recv(65536)
            try:
                for start in range(0, len(self.answer), self.chunk):
                    conn.sendall(self.answer[start:start + self.chunk])
                    sent += self.chunk
                    if self.hung_up.wait(self.every_s):
                        break
            except OSError:
                pass
        self.sent.append(sent)
        self.hung_up.set()

    def close(self) -> None:
        self.hung_up.set()
        self.sock.close()


@pytest.fixture
def world(iris_model: Path) -> Iterator[World]:
    w = make_world(iris_model, settings_overrides={"webhook_timeout_s": DEADLINE_S})
    yield w
    w.aws.stop()


def finish_job(world: World, url: str, owner: str) -> str:
    job, _ = world.service.submit(JobRequest.model_validate({"model": "iris", "inputs": {"features": ROWS},
                                                             "webhook": {"url": url}}), owner=owner)
    messages = world.receive("jobs-iris")
    world.ack("jobs-iris", messages, world.worker().handle(world.event("jobs-iris", messages)))
    return job.job_id


DRIPS = {
    "status line and headers dripped a byte at a time": b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000,
    "headers never end": b"HTTP/1.1 200 OK\r\n" + b"X-Header: value\r\n" * 10_000,
}


@pytest.mark.parametrize("answer", DRIPS.values(), ids=DRIPS.keys())
def test_a_dripping_receiver_is_cut_off_at_the_deadline_and_delays_no_other_tenant(
        world: World, receiver: WebhookReceiver, answer: bytes) -> None:
    # GIVEN two finished jobs of two keys: one's receiver drips its answer, the other's answers at once
    hostile = HostileReceiver(answer, every_s=DEADLINE_S / 10)
    try:
        slow = finish_job(world, hostile.url, owner="key-a")
        fast = finish_job(world, receiver.url, owner="key-b")
        # WHEN the webhook function takes both in one batch
        messages = world.receive("webhooks")
        assert len(messages) == 2
        response = WebhookHandler(world.sender).handle(world.event("webhooks", messages))
        # THEN the batch succeeds as a whole: the other tenant's webhook is delivered, the slow one is retried
        assert response == {"batchItemFailures": []}
        assert world.store.get(fast).webhook_status == "delivered"
        job = world.store.get(slow)
        (attempt,) = job.webhook_attempts
        assert job.webhook_status == "pending" and "within the 2 s deadline" in attempt["error"]
        # AND the sender hung up while the receiver was still dripping (about 10 bytes: one per tenth of the
        # deadline), long before its answer ended
        assert hostile.hung_up.wait(10)
        (sent,) = hostile.sent
        assert sent < 100 < len(answer)
    finally:
        hostile.close()


def test_nothing_of_a_huge_answer_body_is_read(world: World) -> None:
    # GIVEN a receiver that answers 200 and then 50 MB of body
    body = b"x" * (50 * 1024 * 1024)
    hostile = HostileReceiver(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, every_s=0,
                              chunk=64 * 1024)
    try:
        job_id = finish_job(world, hostile.url, owner="key-a")
        world.deliver_webhooks()
        # THEN the delivery counts (the status line said 200), and the sender hung up on the body
        assert world.store.get(job_id).webhook_status == "delivered"
        assert hostile.hung_up.wait(10)
        (sent,) = hostile.sent
        assert sent < len(body) // 2
    finally:
        hostile.close()


def test_a_dead_lettered_webhook_ends_failed(world: World) -> None:
    # GIVEN a finished job whose webhook message exhausted the webhook queue's receives (e.g. the function timed
    # out on it each time) and landed in the webhooks DLQ
    job_id = finish_job(world, "http://127.0.0.1:9/never", owner="key-a")
    (message,) = world.receive("webhooks")
    world.aws.client("sqs").send_message(QueueUrl=world.aws.queue_urls["webhooks-dlq"], MessageBody=message["Body"])
    assert world.store.get(job_id).webhook_status == "pending"
    # WHEN the dead-letter function consumes it
    dead = world.receive("webhooks-dlq")
    response = DeadLetterHandler(world.store, world.sender).handle(world.event("webhooks-dlq", dead))
    # THEN the webhook ends failed, saying why; the job's result is untouched
    assert response == {"batchItemFailures": []}
    job = world.service.view(job_id, owner="key-a")
    assert job.webhook.status == "failed" and "gave up" in (job.webhook.attempts[-1].error or "")
    assert job.status == "succeeded" and job.result is not None
    # AND a webhook already delivered is left as it is
    delivered = WebhookMessage.model_validate_json(message["Body"])
    world.store.record_webhook_attempt(delivered.job_id, {"at": "now", "status_code": 200}, "delivered")
    assert not world.store.fail_webhook(delivered.job_id, {"at": "now"})


def test_a_slow_dns_server_does_not_hold_a_submission(iris_model: Path) -> None:
    # GIVEN a DNS server that takes 30 s to answer
    answered = threading.Event()

    def slow(host: str, port: int) -> list[str]:
        answered.wait(30)
        return ["93.184.216.34"]

    world = make_world(iris_model, resolve=slow, allow_loopback=False)
    try:
        # WHEN a job names a webhook on it THEN the submission is refused once the lookup's budget is spent
        body = JobRequest.model_validate({"model": "iris", "inputs": {"features": ROWS},
                                          "webhook": {"url": "https://slow.example.com/hook"}})
        with pytest.raises(UnsafeWebhookUrlError, match="did not resolve within 2 s"):
            world.service.submit(body, owner="key-a")
        assert world.receive("jobs-iris") == []
    finally:
        answered.set()
        world.aws.stop()

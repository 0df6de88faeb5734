"""A job that failed transiently returns in seconds, not after the queue's visibility timeout.

The worker reports such a job's record in `batchItemFailures`: the event source mapping leaves its message in
the queue, invisible until the visibility timeout set on the queue (six times the worker's timeout: minutes).
Before reporting it, the worker sets that message's visibility to a short delay that grows with each delivery
and carries jitter (`ChangeMessageVisibility`), so that a store that throttled for a moment or a model that
failed once costs seconds, and a burst of failed jobs does not come back all at once. Deliveries still count:
past `maxReceiveCount` the message goes to the dead-letter queue, which ends the job with its last error.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from inferstack.aws import AwsClients
from inferstack.observability import logger

#: The first retry's delay (before jitter); each further delivery doubles it.
BASE_S = 2.0
#: The longest delay given (SQS allows up to 12 hours; a longer wait is the visibility timeout's business).
CAP_S = 60.0


def retry_delay_s(receive_count: int, rng: Callable[[], float] = random.random) -> int:
    """Seconds before delivery `receive_count + 1`: BASE_S * 2^(n-1), capped at CAP_S, less up to half of it
    at random ("equal jitter"); at least 1 s."""
    ceiling: float = min(CAP_S, BASE_S * 2.0 ** max(0, receive_count - 1))
    return max(1, round(ceiling / 2 + rng() * ceiling / 2))


class RetryDelay:
    """Sets the visibility of transiently failed messages to `retry_delay_s`, ten a call per queue."""

    def __init__(self, aws: AwsClients, queue_urls: Iterable[str], *,
                 rng: Callable[[], float] = random.random) -> None:
        self.aws, self.rng = aws, rng
        #: queue name -> URL: a record names its queue by ARN, whose last part is the queue's name.
        self.urls = {url.rstrip("/").rsplit("/", 1)[-1]: url for url in queue_urls}

    def _url(self, arn: str) -> str:
        name = arn.rsplit(":", 1)[-1]
        url = self.urls.get(name)
        if url is None:
            url = self.urls[name] = self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return url

    def hand_back(self, records: Iterable[SQSRecord], failed: set[str]) -> None:
        """Best effort: a message whose visibility cannot be changed returns after the visibility timeout."""
        by_queue: dict[str, list[SQSRecord]] = {}
        for record in records:
            if record.message_id in failed:
                by_queue.setdefault(record.event_source_arn, []).append(record)
        for arn, queued in by_queue.items():
            try:
                url = self._url(arn)
                for start in range(0, len(queued), 10):
                    chunk = queued[start:start + 10]
                    out = self.aws.sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": r.receipt_handle,
                         "VisibilityTimeout": retry_delay_s(int(r.attributes.approximate_receive_count), self.rng)}
                        for i, r in enumerate(chunk)])
                    for failure in out.get("Failed", []):
                        logger.warning("cannot shorten a failed job's retry delay", extra={
                            "message_id": chunk[int(failure["Id"])].message_id, "code": failure.get("Code")})
            except Exception:
                logger.exception("cannot shorten the failed jobs' retry delay", extra={"queue": arn})

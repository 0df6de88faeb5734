"""Jobs that wait for their model: a heavy model scaled to zero cannot run them until an instance is up.

The worker hands such a job back to its queue as a new message with a delay (SQS `DelaySeconds`, at most
15 minutes) and lets the event source mapping delete the delivered one. A message's receive count only
grows (changing its visibility would not reset it), so a fresh message is the way to wait without drawing
on the job's `maxReceiveCount`: waiting never sends a job to the dead-letter queue. The job goes back to
`queued`, its attempt uncounted.

A job that has waited longer than `MAX_WAIT_S` (the model never came up) is handed back no more: its delivery
fails like any other transient error, and the usual retries and dead-letter path end it with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from inferstack.aws import AwsClients
from inferstack.jobs.schemas import JobMessage
from inferstack.jobs.store import JobStore
from inferstack.observability import logger

#: How long a job may wait for its model to scale out from zero (SageMaker takes minutes to bring up a GPU
#: instance; this is several times that).
MAX_WAIT_S = 1800
#: SQS's largest message delay.
MAX_DELAY_S = 900


class Deferrer:
    def __init__(self, store: JobStore, aws: AwsClients, queues: dict[str, str], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.aws, self.queues, self.clock = store, aws, queues, clock

    def hand_back(self, message: JobMessage, delay_s: int) -> bool:
        """Requeue the job to run in `delay_s` seconds. True when it is back in its queue (the delivered message
        is done with); False when it has waited too long or could not be requeued (the delivery then fails)."""
        now = self.clock()
        since = message.waiting_since if message.waiting_since is not None else now
        if now - since > MAX_WAIT_S:
            logger.warning("the job's model did not come up in time", extra={
                "job_id": message.job_id, "model": message.model, "waited_s": round(now - since)})
            return False
        try:
            self.store.release(message.job_id)
            self.aws.sqs.send_message(
                QueueUrl=self.queues[message.model], DelaySeconds=min(MAX_DELAY_S, max(0, delay_s)),
                MessageBody=message.model_copy(update={"waiting_since": since}).model_dump_json(exclude_none=True))
        except Exception:
            logger.exception("cannot hand the job back to its queue", extra={"job_id": message.job_id})
            return False
        logger.info("the job waits for its model to scale out", extra={
            "job_id": message.job_id, "model": message.model, "retry_in_s": delay_s})
        return True

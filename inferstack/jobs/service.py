"""Submit and read jobs: what the API function does for `POST /v1/jobs` and `GET /v1/jobs/{id}`."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable

from inferstack.aws import AwsClients
from inferstack.jobs.exceptions import JobNotFoundError, QueueFullError
from inferstack.jobs.schemas import (
    INLINE_INPUT_BYTES,
    JobMessage,
    JobRequest,
    JobView,
    WebhookAttempt,
    WebhookState,
)
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.ssrf import Resolver, check_webhook_url, system_resolver
from inferstack.jobs.store import Job, JobStore, now_iso
from inferstack.observability import logger

#: How long a queue depth reading is reused (one GetQueueAttributes call per model per interval).
DEPTH_CACHE_S = 2.0


def request_hash(body: JobRequest) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobService:
    def __init__(self, settings: JobsSettings, aws: AwsClients | None = None, *,
                 resolve: Resolver = system_resolver, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.aws = aws or AwsClients()
        self.store = JobStore(self.aws, table=settings.table, bucket=settings.bucket,
                              ttl_days=settings.result_ttl_days)
        self.resolve, self.clock = resolve, clock
        self._depth: dict[str, tuple[float, int]] = {}

    def queue_depth(self, model: str) -> int:
        seen = self._depth.get(model)
        if seen and self.clock() - seen[0] < DEPTH_CACHE_S:
            return seen[1]
        attrs = self.aws.sqs.get_queue_attributes(QueueUrl=self.settings.queues[model],
                                                  AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        depth = int(attrs.get("ApproximateNumberOfMessages", 0))
        self._depth[model] = (self.clock(), depth)
        return depth

    def submit(self, body: JobRequest, *, owner: str, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Store and enqueue a job. Returns the job and whether it was created now (False: an idempotent
        resubmission). The caller has checked that the model exists."""
        if body.webhook:
            check_webhook_url(body.webhook.url, allow_loopback=self.settings.allow_loopback_webhooks,
                              resolve=self.resolve)
        digest = request_hash(body)
        job_id = uuid.uuid4().hex
        if idempotency_key:
            existing = self.store.claim_idempotency_key(owner, idempotency_key, digest, job_id)
            if existing:
                return self.store.get(existing), False
        depth = self.queue_depth(body.model)
        if depth >= self.settings.max_queue_depth:
            raise QueueFullError(body.model, depth, self.settings.max_queue_depth)
        job = Job(job_id=job_id, owner=owner, model=body.model, status="queued", created_at=now_iso(),
                  request_hash=digest, metadata=body.metadata, webhook_url=body.webhook.url if body.webhook else None)
        self.store.create(job)
        message = JobMessage(job_id=job_id, model=body.model, inputs=body.inputs, webhook_url=job.webhook_url,
                             metadata=body.metadata, protocol=body.protocol)
        payload = message.model_dump_json(exclude_none=True)
        if len(payload) > INLINE_INPUT_BYTES:
            ref = self.store.put_blob(f"inputs/{job_id}.json", json.dumps(body.inputs).encode())
            payload = message.model_copy(update={"inputs": None, "inputs_ref": ref}).model_dump_json(exclude_none=True)
        try:
            self.aws.sqs.send_message(QueueUrl=self.settings.queues[body.model], MessageBody=payload)
        except Exception:
            self._not_enqueued(job, idempotency_key)
            raise
        return job, True

    def _not_enqueued(self, job: Job, idempotency_key: str | None) -> None:
        """The job was stored but could not be enqueued: fail it, so that it never waits forever, and free its
        idempotency key, so that the client's retry (it gets 503) submits it afresh. Best effort: with the
        store down too, the job stays queued and its key keeps pointing at it."""
        try:
            self.store.finish(job.job_id, error={"type": "not-enqueued",
                                                 "detail": "the queue could not be reached; submit again"})
            if idempotency_key:
                self.store.release_idempotency_key(job.owner, idempotency_key)
        except Exception:
            logger.exception("cannot fail a job that was not enqueued", extra={"job_id": job.job_id})

    def view(self, job_id: str, *, owner: str) -> JobView:
        job = self.store.get(job_id)
        if job.owner != owner:
            raise JobNotFoundError(job_id)  # another key's job: indistinguishable from none
        result, result_url = self.store.load_result(job) if job.status == "succeeded" else (None, None)
        return JobView(
            job_id=job.job_id, model=job.model, status=job.status, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at, attempts=job.attempts, result=result,
            result_url=result_url, error=job.error, metadata=job.metadata, model_version=job.model_version,
            webhook=WebhookState(url=job.webhook_url, status=job.webhook_status,
                                 attempts=[WebhookAttempt.model_validate(a) for a in job.webhook_attempts]))

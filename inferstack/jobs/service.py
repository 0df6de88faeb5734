"""Submit and read jobs: what the API function does for `POST /v1/jobs` and `GET /v1/jobs/{id}`."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable

from inferstack.aws import AwsClients
from inferstack.jobs.exceptions import (
    IdempotencyConflictError,
    IdempotencyInProgressError,
    JobNotFoundError,
    QueueFullError,
)
from inferstack.jobs.schemas import (
    INLINE_INPUT_BYTES,
    JobMessage,
    JobRequest,
    JobView,
    WebhookAttempt,
    WebhookState,
)
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.ssrf import Resolver, bounded, check_webhook_url, system_resolver
from inferstack.jobs.store import Job, JobStore, now_iso
from inferstack.observability import logger, xray
from inferstack.observability.tracing import sqs_trace_attributes

#: A submission takes at most this long (the API function's timeout): a key younger than this whose job is not
#: stored yet is a submission in flight, an older one a submission that failed half way.
IN_FLIGHT_S = 30
#: The error type of a job that was stored but never enqueued (its key is free again).
NOT_ENQUEUED = "not-enqueued"
#: Seconds the submit-time lookup of a webhook host may take (the API function answers within 10 s).
DNS_BUDGET_S = 2.0
#: What job IDs look like (`uuid4().hex`).
JOB_ID = re.compile(r"[0-9a-f]{32}")
#: How long a queue depth reading is reused (one GetQueueAttributes call per model per interval).
DEPTH_CACHE_S = 2.0


def request_hash(body: JobRequest) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobService:
    def __init__(self, settings: JobsSettings, aws: AwsClients | None = None, *,
                 resolve: Resolver = system_resolver, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.aws = aws or AwsClients()
        self.store = JobStore(self.aws, table=settings.table, bucket=settings.bucket,
                              ttl_days=settings.result_ttl_days)
        self.resolve = bounded(resolve, DNS_BUDGET_S)
        self.clock, self.wall_clock = clock, wall_clock
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
                              resolve=self.resolve, refused_ports=self.settings.refused_ports())
        digest = request_hash(body)
        job_id = uuid.uuid4().hex
        # Capacity first: a refused submission must leave its key free for the client's retry.
        depth = self.queue_depth(body.model)
        if depth >= self.settings.max_queue_depth:
            raise QueueFullError(body.model, depth, self.settings.max_queue_depth)
        if idempotency_key:
            existing = self._claim(owner, idempotency_key, digest, job_id)
            if existing:
                return existing, False
        xray.annotate(model=body.model, job_id=job_id)  # the submission's trace, found by its job ID
        job = Job(job_id=job_id, owner=owner, model=body.model, status="queued", created_at=now_iso(),
                  request_hash=digest, metadata=body.metadata, webhook_url=body.webhook.url if body.webhook else None)
        stored = False
        try:
            self.store.create(job)
            stored = True
            message = JobMessage(job_id=job_id, model=body.model, inputs=body.inputs, webhook_url=job.webhook_url,
                                 metadata=body.metadata, protocol=body.protocol)
            payload = message.model_dump_json(exclude_none=True)
            if len(payload) > INLINE_INPUT_BYTES:
                ref = self.store.put_blob(f"inputs/{job_id}.json", json.dumps(body.inputs).encode())
                payload = message.model_copy(update={"inputs": None, "inputs_ref": ref}).model_dump_json(
                    exclude_none=True)
            self.aws.sqs.send_message(QueueUrl=self.settings.queues[body.model], MessageBody=payload,
                                      **sqs_trace_attributes())
        except Exception:
            self._not_enqueued(job, idempotency_key, stored=stored)
            raise
        return job, True

    def _claim(self, owner: str, key: str, digest: str, job_id: str) -> Job | None:
        """Claim `key` for `job_id`: None when claimed now, or the job that holds it (the same body). A key whose
        job was never stored (its submission failed half way) or never enqueued is free again, once it is older
        than any submission in flight could be; a younger one is a submission in flight (409, retry)."""
        for _ in range(3):
            existing = self.store.claim_idempotency_key(owner, key, digest, job_id)
            if existing is None:
                return None
            try:
                job: Job | None = self.store.get(existing.job_id)
            except JobNotFoundError:
                job = None
            if job is not None and (job.error or {}).get("type") != NOT_ENQUEUED:
                if existing.request_hash != digest:
                    raise IdempotencyConflictError(key, existing.job_id)
                return job
            if job is None and self.wall_clock() - existing.claimed_at < IN_FLIGHT_S:
                raise IdempotencyInProgressError(key)
            if self.store.take_over_idempotency_key(owner, key, existing, digest, job_id):
                return None
        raise IdempotencyInProgressError(key)

    def _not_enqueued(self, job: Job, idempotency_key: str | None, *, stored: bool) -> None:
        """The job could not be stored or enqueued: fail it (if stored), so that it never waits forever, and free
        its idempotency key, so that the client's retry (it gets 503) submits it afresh. Best effort, each step on
        its own: with the store down, a key left behind is freed by `_claim` (its job is missing or failed)."""
        if stored:
            try:
                self.store.finish(job.job_id, error={"type": NOT_ENQUEUED,
                                                     "detail": "the queue could not be reached; submit again"})
            except Exception:
                logger.exception("cannot fail a job that was not enqueued", extra={"job_id": job.job_id})
        if idempotency_key:
            try:
                self.store.release_idempotency_key(job.owner, idempotency_key)
            except Exception:
                logger.exception("cannot free the idempotency key of a refused job", extra={"job_id": job.job_id})

    def view(self, job_id: str, *, owner: str) -> JobView:
        if not JOB_ID.fullmatch(job_id):  # not an ID this service hands out: no store lookup (a 404)
            raise JobNotFoundError(job_id[:64])
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

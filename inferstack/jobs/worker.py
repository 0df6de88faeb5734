"""The job worker: takes a batch of SQS records, runs every job of it, stores each result once.

Jobs whose inputs stack (same input names, dtypes and non-batch dims) run in one vectorised inference call;
each job gets its own rows back. For a model with a handler, each job's inputs go through its `preprocess`,
the resulting tensors stack the same way, and each job's rows go through its `postprocess`.

Bad input fails its job at once (no retry). Anything else that goes wrong is transient: the record is
reported in `batchItemFailures`, returns after a short growing jittered delay (`jobs.backoff`), and after
`maxReceiveCount` deliveries lands in the DLQ, where `dead_letter` marks the job failed with the last error.
A job whose heavy model is scaled to zero waits in its queue until the model is up (`jobs.deferral`), without
using up its deliveries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from inferstack.api.jsonbody import JsonBodyError, parse_json
from inferstack.jobs.backoff import RetryDelay
from inferstack.jobs.deferral import Deferrer
from inferstack.jobs.exceptions import TransientJobError, public_reason
from inferstack.jobs.runners import (
    Deferred,
    EndpointRunner,
    Errored,
    InProcessRunner,
    Invalid,
    Outcome,
    Runner,
    Succeeded,
    VariantsRunner,
)
from inferstack.jobs.schemas import JobMessage, WebhookMessage
from inferstack.jobs.sqs import partial_batch_response
from inferstack.jobs.store import TERMINAL, Job, JobStore
from inferstack.jobs.webhooks import WebhookSender
from inferstack.observability import emf, logger, registry, xray
from inferstack.observability.tracing import sqs_trace_attributes

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


__all__ = ["BatchWorker", "Deferred", "EndpointRunner", "Errored", "InProcessRunner", "Invalid", "Outcome", "Runner",
           "Succeeded", "VariantsRunner"]


class BatchWorker:
    def __init__(self, store: JobStore, webhooks: WebhookSender, runner: Runner) -> None:
        self.store, self.webhooks, self.runner = store, webhooks, runner
        self.deferrer = Deferrer(store, webhooks.aws, webhooks.settings.queues)
        self.retry = RetryDelay(webhooks.aws, webhooks.settings.queues.values())

    def _inputs(self, message: JobMessage) -> Any:
        if message.inputs_ref:
            return parse_json(self.store.get_blob(message.inputs_ref), what="The job's inputs")
        return message.inputs

    def _unreadable(self, record: SQSRecord) -> None:
        """A message that is not a job message (e.g. nested past the JSON parser's limit): its job, where one
        can be named, fails at once as invalid input; a retry would read the same bytes."""
        try:
            job_id = json.loads(record.body).get("job_id")
        except Exception:
            job_id = None
        logger.error("unreadable job message", extra={"message_id": record.message_id, "job_id": job_id})
        if not isinstance(job_id, str):
            return
        error = {"type": "invalid-input", "detail": "The job's message could not be read as a job"}
        try:
            self.store.finish(job_id, error=error)
        except Exception:
            logger.exception("cannot fail the job of an unreadable message", extra={"job_id": job_id})

    @staticmethod
    def _run_isolated(run: Callable[[Sequence[Any]], list[Outcome]], items: list[Any]) -> list[Outcome]:
        """`run` over `items`; when it raises (a MemoryError, a RecursionError, a bug), each item runs on its own,
        so that only the jobs that raise again fail (transiently: retried, then the DLQ), not their batch."""
        try:
            return run(items)
        except Exception as exc:
            if len(items) == 1:
                logger.error("a job's run raised", exc_info=exc)
                return [Errored(f"the job could not be run ({type(exc).__name__})")]
        outcomes: list[Outcome] = []
        for item in items:
            outcomes += BatchWorker._run_isolated(run, [item])
        return outcomes

    def _finished(self, record: SQSRecord, job: Job, result: Any, pending: list[tuple[str, WebhookMessage]]) -> None:
        message = self.webhooks.message_for(job, result)
        if message:
            pending.append((record.message_id, message))

    def _replay_webhook(self, record: SQSRecord, job_id: str, pending: list[tuple[str, WebhookMessage]]) -> None:
        """A redelivery of a finished job: if the worker that finished it died before handing the webhook
        over, hand it over now. (A worker that died after the handover makes this a second delivery with the
        same webhook-id, which Standard Webhooks receivers deduplicate on.)"""
        job = self.store.get(job_id)
        if job.status in TERMINAL and job.webhook_status == "pending" and not job.webhook_attempts:
            result, _ = self.store.load_result(job) if job.status == "succeeded" else (None, None)
            self._finished(record, job, result, pending)

    def process(self, records: list[SQSRecord]) -> set[str]:
        """Run a batch; returns the message IDs to report as failed (they will be retried)."""
        failed: set[str] = set()
        pending_webhooks: list[tuple[str, WebhookMessage]] = []
        messages: list[tuple[SQSRecord, JobMessage]] = []
        for record in records:
            try:
                messages.append((record, JobMessage.model_validate_json(record.body)))
            except ValidationError:
                self._unreadable(record)
        running, unclaimed = self.store.claim([m.job_id for _, m in messages])
        claimed: list[tuple[SQSRecord, JobMessage, Job, Any]] = []
        seen: set[str] = set()
        for record, message in messages:
            if message.job_id in unclaimed:  # its claim failed transiently: only its record is retried
                logger.error("cannot start the job", exc_info=unclaimed[message.job_id],
                             extra={"job_id": message.job_id})
                failed.add(record.message_id)
                self._note(message.job_id, unclaimed[message.job_id])
                continue
            if message.job_id not in running or message.job_id in seen:
                logger.info("duplicate delivery of a finished job", extra={"job_id": message.job_id})
                if message.job_id not in running and int(record.attributes.approximate_receive_count) > 1:
                    self._replay_webhook(record, message.job_id, pending_webhooks)  # a redelivery, not a twin
                continue
            seen.add(message.job_id)
            try:
                inputs = self._inputs(message)
            except JsonBodyError as exc:
                error = {"type": "invalid-input", "detail": exc.detail}
                job = Job(job_id=message.job_id, owner="", model=message.model, status="failed", created_at="",
                          metadata=message.metadata, webhook_url=message.webhook_url, error=error)
                try:
                    if self.store.finish(job.job_id, error=error):
                        self._finished(record, job, None, pending_webhooks)
                except Exception as store_exc:
                    failed.add(record.message_id)
                    self._note(message.job_id, store_exc)
                continue
            except Exception as exc:
                logger.exception("cannot read the job's inputs", extra={"job_id": message.job_id})
                failed.add(record.message_id)
                self._note(message.job_id, exc)
                continue
            job = Job(job_id=message.job_id, owner="", model=message.model, status="running", created_at="",
                      metadata=message.metadata, webhook_url=message.webhook_url)
            claimed.append((record, message, job, inputs))

        outcomes: list[Outcome] = [Errored("not run")] * len(claimed)
        started = time.perf_counter()
        for protocol in ("v1", "v2"):
            members = [i for i, c in enumerate(claimed) if c[1].protocol == protocol]
            if members:
                run = self.runner.run if protocol == "v1" else self.runner.run_v2
                results = self._run_isolated(run, [claimed[i][3] for i in members])
                version = self._version()  # who ran them (an A/B variant is picked per call)
                for i, outcome in zip(members, results, strict=True):
                    outcomes[i] = outcome
                    claimed[i][2].model_version = version
        self._measure(claimed, outcomes, emf.elapsed_ms(started))
        for (record, message, job, _), outcome in zip(claimed, outcomes, strict=True):
            # a subsegment per job (its result stored, its webhook queued), found by its job ID in X-Ray
            with xray.traced("## job", model=message.model, version=job.model_version, job_id=job.job_id):
                self._conclude(record, message, job, outcome, pending_webhooks=pending_webhooks, failed=failed)
        failed |= self._send_webhooks(pending_webhooks)
        return failed

    def _conclude(self, record: SQSRecord, message: JobMessage, job: Job, outcome: Outcome, *,
                  pending_webhooks: list[tuple[str, WebhookMessage]], failed: set[str]) -> None:
        """Store one job's outcome (`failed` gets its record when it is to be retried)."""
        try:
            if isinstance(outcome, Deferred):
                if self.deferrer.hand_back(message, outcome.retry_after_s):
                    return  # back in its queue as a new message; this delivery is done with
                raise TransientJobError(f"the model {message.model} did not come up to run the job")
            if isinstance(outcome, Errored):
                raise TransientJobError(outcome.message)
            if isinstance(outcome, Invalid):
                error = {"type": "invalid-input", "detail": str(outcome.error)}
                if self.store.finish(job.job_id, error=error, version=job.model_version):
                    job.status, job.error = "failed", error
                    self._finished(record, job, None, pending_webhooks)
            elif self.store.finish(job.job_id, result=outcome.outputs, version=job.model_version):
                job.status = "succeeded"
                self._finished(record, job, outcome.outputs, pending_webhooks)
        except Exception as exc:
            logger.exception("job failed transiently", extra={"job_id": job.job_id})
            failed.add(record.message_id)
            self._note(job.job_id, exc)

    @staticmethod
    def _measure(claimed: Sequence[tuple[SQSRecord, JobMessage, Job, Any]], outcomes: Sequence[Outcome],
                 run_ms: float) -> None:
        """Per model: jobs run and how they ended, their wait in the queue, the batch's run time and size."""
        now_ms = time.time() * 1000
        for (record, message, _, _), outcome in zip(claimed, outcomes, strict=True):
            metrics = registry.model(message.model)
            if isinstance(outcome, (Succeeded, Invalid)):
                metrics.add(emf.JOBS_SUCCEEDED if isinstance(outcome, Succeeded) else emf.JOBS_FAILED)
            sent = record.attributes.sent_timestamp
            if sent:
                metrics.add(emf.JOB_QUEUE_WAIT, max(0.0, now_ms - int(sent)))
            metrics.add(emf.JOB_RUN_TIME, run_ms)
        for model in {message.model for _, message, _, _ in claimed}:
            registry.model(model).add(emf.JOB_BATCH_SIZE, sum(1 for _, m, _, _ in claimed if m.model == model))

    def _version(self) -> str | None:
        """The model version of the runner's last call, recorded on each job it ran (`model_version`)."""
        return getattr(getattr(self.runner, "predictor", None), "version", None)

    def _note(self, job_id: str, exc: Exception) -> None:
        try:
            self.store.note_error(job_id, f"{type(exc).__name__}: {public_reason(exc)}")
        except Exception:
            logger.exception("cannot record the error on the job", extra={"job_id": job_id})

    def _send_webhooks(self, pending: list[tuple[str, WebhookMessage]]) -> set[str]:
        """Hand finished jobs' webhooks to the webhook queue, ten a call. Returns the records whose webhook
        could not be handed over: reported as failed, their redelivery hands it over (`_replay_webhook`)."""
        unsent: set[str] = set()
        for start in range(0, len(pending), 10):
            chunk = pending[start:start + 10]
            try:
                out = self.webhooks.aws.sqs.send_message_batch(
                    QueueUrl=self.webhooks.settings.webhook_queue,
                    Entries=[cast("SendMessageBatchRequestEntryTypeDef", {
                        "Id": str(i), "MessageBody": m.model_dump_json(), **sqs_trace_attributes()})
                        for i, (_, m) in enumerate(chunk)])
                unsent |= {chunk[int(f["Id"])][0] for f in out.get("Failed", [])}
            except Exception:
                logger.exception("cannot enqueue webhooks")
                unsent |= {record_id for record_id, _ in chunk}
        return unsent

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda handler body: partial batch response via Powertools' BatchProcessor."""
        records = [SQSRecord(r) for r in event.get("Records", [])]
        try:
            failed = self.process(records)
            self.retry.hand_back(records, failed)  # back in seconds, not after the visibility timeout
        finally:
            registry.flush()

        def record_handler(record: SQSRecord) -> None:
            if record.message_id in failed:
                raise TransientJobError(f"job in message {record.message_id} will be retried")

        return partial_batch_response(event, record_handler, context)

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from inferstack.api.jsonbody import JsonBodyError, parse_json
from inferstack.inference.exceptions import InputValidationError
from inferstack.jobs.backoff import RetryDelay
from inferstack.jobs.deferral import Deferrer
from inferstack.jobs.exceptions import TransientJobError, public_reason
from inferstack.jobs.schemas import JobMessage, WebhookMessage
from inferstack.jobs.sqs import partial_batch_response
from inferstack.jobs.store import TERMINAL, Job, JobStore
from inferstack.jobs.webhooks import WebhookSender
from inferstack.observability import emf, logger, registry
from inferstack.observability.tracing import sqs_trace_attributes

if TYPE_CHECKING:
    import numpy as np
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from inferstack.heavy.endpoint import EndpointPredictor
    from inferstack.heavy.exceptions import EndpointError
    from inferstack.inference.session import Predictor, Prepared
    from inferstack.rollout.variants import Variants


@dataclass(frozen=True)
class Succeeded:
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """The job's input was at fault: it fails at once, without retries."""

    error: Exception


@dataclass(frozen=True)
class Errored:
    message: str


@dataclass(frozen=True)
class Deferred:
    """The model cannot run the job yet (scaled to zero, starting): the job waits `retry_after_s` in its queue."""

    retry_after_s: int


Outcome = Succeeded | Invalid | Errored | Deferred


class Runner(Protocol):
    """Runs the jobs of one batch; returns one outcome per input, in order. Light models run in-process
    (`InProcessRunner`); heavy models run on their SageMaker endpoint behind the same seam (`EndpointRunner`).
    `run_v2` takes Open Inference Protocol infer requests and gives their infer responses."""

    def run(self, inputs: Sequence[Any]) -> list[Outcome]: ...

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]: ...


def _v2_outcome(result: dict[str, Any] | Exception) -> Outcome:
    from inferstack.protocol.exceptions import BinaryDataError, InferRequestError

    if not isinstance(result, Exception):
        return Succeeded(result)
    if isinstance(result, InputValidationError | InferRequestError | BinaryDataError):
        return Invalid(result)
    logger.error("a v2 job failed", exc_info=result)
    return Errored(public_reason(result))


class InProcessRunner:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._names = [s.name for s in predictor.inputs]
        self._name_set = set(self._names)
        #: Inference calls made; the benchmarks and tests read it to see vectorisation happen.
        self.calls = 0

    def _run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.predictor.run(arrays)

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        from inferstack.protocol.batch import infer_many

        return [_v2_outcome(r) for r in infer_many(self.predictor, self._run, requests)]

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        fast = self._run_stacked(inputs) if self.predictor.handler is None else None
        return fast if fast is not None else self._run_grouped(inputs)

    def _normalised(self, raw: Any) -> dict[str, list[Any]] | None:
        """The job's inputs as {name: rows} when they are well-formed for the fast path, else None. Runs once
        per job per batch: kept to plain type checks."""
        if type(raw) is list:
            if len(self._names) != 1:
                return None
            raw = {self._names[0]: raw}
        elif type(raw) is not dict or raw.keys() != self._name_set:
            return None
        rows = -1
        for name in self._names:
            value = raw[name]
            if type(value) is not list or not value or (rows >= 0 and len(value) != rows):
                return None
            rows = len(value)
        well_formed: dict[str, list[Any]] = raw
        return well_formed

    def _run_stacked(self, inputs: Sequence[Any]) -> list[Outcome] | None:
        """The fast path: every job well-formed, so the whole batch is validated and run as one array per
        input. None when any job needs individual treatment (then `_run_grouped` pins each problem on its
        job)."""
        from inferstack.inference.validation import to_jsonable

        jobs = [self._normalised(raw) for raw in inputs]
        if not jobs or any(j is None for j in jobs):
            return None
        names = self._names
        stacked_raw = {n: [row for j in jobs if j for row in j[n]] for n in names}
        try:
            arrays = self.predictor.validate(stacked_raw)
        except InputValidationError:
            return None
        try:
            results = self._run(arrays)
        except Exception:
            return None
        as_lists = {k: to_jsonable(v) for k, v in results.items()}  # once for the batch, then sliced per job
        outcomes: list[Outcome] = []
        start = 0
        for job in jobs:
            assert job is not None
            rows = len(job[names[0]])
            outcomes.append(Succeeded({k: v[start:start + rows] for k, v in as_lists.items()}))
            start += rows
        return outcomes

    def _run_grouped(self, inputs: Sequence[Any]) -> list[Outcome]:
        """Each job prepared on its own (validated, or through the model's handler), then the jobs whose
        tensors stack run together; each job's problem stays its own."""
        from inferstack.inference.exceptions import HandlerError
        from inferstack.inference.stacking import group, run_stacked

        outcomes: list[Outcome | None] = [None] * len(inputs)
        ready: list[tuple[int, Prepared]] = []
        for i, raw in enumerate(inputs):
            try:
                ready.append((i, self.predictor.prepare(raw)))
            except InputValidationError as exc:
                outcomes[i] = Invalid(exc)
            except HandlerError:
                logger.exception("the model's handler failed", extra={"model": self.predictor.name})
                outcomes[i] = Errored("the model's handler failed on the job (its log has the details)")
        for members in group([p.arrays for _, p in ready]):
            results = run_stacked(self._run, [ready[m][1].arrays for m in members])
            for m, result in zip(members, results, strict=True):
                i, prepared = ready[m]
                outcomes[i] = self._respond(prepared, result)
        return [o if o is not None else Errored("not run") for o in outcomes]

    def _respond(self, prepared: Prepared, outputs: dict[str, np.ndarray] | Exception) -> Outcome:
        """One job's outcome from its rows of a run's outputs (or the exception its run raised)."""
        from inferstack.inference.validation import to_jsonable

        try:
            if isinstance(outputs, Exception):
                raise outputs
            if self.predictor.handler is None:
                return Succeeded({k: to_jsonable(v) for k, v in outputs.items()})
            return Succeeded(self.predictor.respond(prepared, outputs))
        except InputValidationError as exc:
            return Invalid(exc)
        except Exception as exc:
            logger.exception("a job failed", extra={"model": self.predictor.name})
            return Errored(public_reason(exc))


class VariantsRunner(InProcessRunner):
    """A light model with A/B variants: each call (a batch of jobs) runs on one variant, picked by weight;
    `predictor` is the one that ran the last call."""

    def __init__(self, variants: Variants) -> None:
        self.variants = variants
        self.runners = [InProcessRunner(a.predictor) for a in variants.arms]
        super().__init__(variants.arms[0].predictor)

    def _pick(self) -> InProcessRunner:
        runner = self.runners[self.variants.pick_index()]
        self.predictor = runner.predictor
        return runner

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return self._pick().run(inputs)

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return self._pick().run_v2(requests)


class EndpointRunner:
    """A heavy model's jobs: one invocation per job, concurrently, so that the endpoint's dynamic batcher
    stacks them. The container validates; its 4xx answers fail the job, anything else retries."""

    def __init__(self, predictor: EndpointPredictor) -> None:
        self.predictor = predictor

    def run_v2(self, requests: Sequence[Any]) -> list[Outcome]:
        return self._outcomes(self.predictor.infer_many(list(requests)))

    def run(self, inputs: Sequence[Any]) -> list[Outcome]:
        return self._outcomes(self.predictor.predict_many(list(inputs)))

    @staticmethod
    def _outcomes(results: Sequence[dict[str, Any] | EndpointError]) -> list[Outcome]:
        from inferstack.heavy.exceptions import NoCapacityError

        outcomes: list[Outcome] = []
        for result in results:
            if not isinstance(result, Exception):
                outcomes.append(Succeeded(result))
            elif isinstance(result, NoCapacityError):
                outcomes.append(Deferred(result.retry_after or 60))
            elif result.is_client_error:
                outcomes.append(Invalid(result))
            else:
                outcomes.append(Errored(f"{result.problem.title}: {result.detail}"))
        return outcomes


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
            try:
                if isinstance(outcome, Deferred):
                    if self.deferrer.hand_back(message, outcome.retry_after_s):
                        continue  # back in its queue as a new message; this delivery is done with
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
        failed |= self._send_webhooks(pending_webhooks)
        return failed

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

"""Submit, read and cancel batches: what the API function does for `/v1/batches`.

Submit checks what can be checked at once (the input exists, is readable and starts in the declared format;
the output is a bucket the stack may write), records the batch, and starts its model's state machine with the
batch ID as the execution's name (Step Functions refuses a second execution of that name: one batch, one run).
Cancel marks the batch: its remaining chunks are skipped and its finishing step writes the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid

from botocore.exceptions import ClientError

from inferstack.aws import AwsClients
from inferstack.batches.exceptions import (
    BatchFinishedError,
    BatchNotFinishedError,
    BatchNotFoundError,
    BatchRequestError,
)
from inferstack.batches.schemas import (
    MANIFEST,
    TERMINAL,
    BatchLinks,
    BatchRequest,
    BatchResults,
    BatchView,
    ChunkCounts,
    ResultFile,
    RowCounts,
    UploadAccepted,
    parse_s3_uri,
)
from inferstack.batches.settings import BatchSettings
from inferstack.batches.store import Batch, BatchStore
from inferstack.jobs.schemas import WebhookAttempt, WebhookState
from inferstack.jobs.ssrf import Resolver, check_webhook_url, system_resolver
from inferstack.jobs.store import now_iso
from inferstack.observability import logger

#: Bytes read from the input at submit to check its format.
PROBE_BYTES = 64 * 1024
UPLOAD_EXPIRES_S = 3600


def request_hash(body: BatchRequest) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class BatchService:
    def __init__(self, settings: BatchSettings, aws: AwsClients, store: BatchStore, *,
                 allow_loopback_webhooks: bool = False, resolve: Resolver = system_resolver) -> None:
        self.settings, self.aws, self.store = settings, aws, store
        self.allow_loopback_webhooks, self.resolve = allow_loopback_webhooks, resolve

    # -- checks at submit -----------------------------------------------------------------------------
    def _check_input(self, body: BatchRequest) -> None:
        bucket, key = parse_s3_uri(body.input)
        if not self.settings.may_read(bucket):
            raise BatchRequestError("input", f"the stack may not read bucket {bucket!r}: use its batch bucket "
                                    f"({self.settings.bucket}) or add the bucket to batches.input_buckets")
        try:
            head = self.aws.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PROBE_BYTES - 1}")
            probe = head["Body"].read()
        except ClientError as exc:
            code = _code(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise BatchRequestError("input", f"{body.input} does not exist") from None
            if code == "InvalidRange":  # an empty object
                raise BatchRequestError("input", f"{body.input} is empty") from None
            if code in ("AccessDenied", "403", "NoSuchBucket"):
                raise BatchRequestError("input", f"{body.input} is not readable ({code})") from None
            raise
        self._check_format(body, probe, complete=len(probe) < PROBE_BYTES)

    def _check_format(self, body: BatchRequest, probe: bytes, *, complete: bool) -> None:
        lines = probe.split(b"\n")
        if not complete:
            lines = lines[:-1]  # the last may be cut
        first = next((ln for ln in lines if ln.strip()), None)
        if first is None:
            if complete:
                raise BatchRequestError("input", f"{body.input} holds no rows")
            raise BatchRequestError("input", f"{body.input}: no line ends within its first {PROBE_BYTES} bytes")
        if body.format == "jsonl":
            try:
                value = json.loads(first)
            except (ValueError, RecursionError):
                raise BatchRequestError("format", f"{body.input} is not JSON Lines: its first line is not JSON "
                                        "(for a CSV file, send \"format\": \"csv\")") from None
            if not isinstance(value, dict):
                raise BatchRequestError("format", f"{body.input}: a JSON Lines row is an object of input name -> "
                                        f"value; its first line is {type(value).__name__}")
        else:
            header = next(csv.reader([lines[0].decode("utf-8-sig", errors="replace").rstrip("\r")]))
            if body.columns:
                missing = sorted({c for cols in body.columns.values() for c in cols} - set(header))
                if missing:
                    raise BatchRequestError("columns", f"{', '.join(map(repr, missing))} not in the CSV header "
                                            f"({', '.join(header)})")

    def _output(self, body: BatchRequest, batch_id: str) -> str:
        output = body.output or f"s3://{self.settings.bucket}/outputs/{batch_id}/"
        bucket, _ = parse_s3_uri(output)
        if not self.settings.may_write(bucket):
            raise BatchRequestError("output", f"the stack may not write to bucket {bucket!r}: use its batch bucket "
                                    f"({self.settings.bucket}) or add the bucket to batches.output_buckets")
        return output

    # -- the routes -----------------------------------------------------------------------------------
    def submit(self, body: BatchRequest, *, owner: str, version: str, rows_per_chunk: int | None = None,
               idempotency_key: str | None = None) -> tuple[Batch, bool]:
        """Check, record and start a batch; returns it and whether it was created now (False: an idempotent
        resubmission). The caller has checked that the model exists and scores batches."""
        if body.model not in self.settings.state_machines:
            raise BatchRequestError("model", f"model {body.model!r} does not score batches in this deployment")
        if body.webhook:
            check_webhook_url(body.webhook.url, allow_loopback=self.allow_loopback_webhooks, resolve=self.resolve)
        batch_id = uuid.uuid4().hex
        output = self._output(body, batch_id)
        digest = request_hash(body)
        if idempotency_key:
            existing = self.store.claim_idempotency_key(owner, idempotency_key, digest, batch_id)
            if existing:
                return self.store.get(existing), False
        try:
            self._check_input(body)
        except Exception:
            if idempotency_key:
                self.store.release_idempotency_key(owner, idempotency_key)
            raise
        batch = Batch(batch_id=batch_id, owner=owner, model=body.model, version=version, status="queued",
                      created_at=now_iso(), input=body.input, format=body.format, output=output,
                      rows_per_chunk=body.rows_per_chunk or rows_per_chunk or self.settings.rows_per_chunk,
                      request_hash=digest, columns=body.columns, metadata=body.metadata,
                      webhook_url=body.webhook.url if body.webhook else None)
        self.store.create(batch)
        state = {"batch_id": batch_id, "model": body.model, "input": body.input, "format": body.format,
                 "output": output, "columns": body.columns}
        try:
            started = self.aws.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machines[body.model], name=batch_id, input=json.dumps(state))
        except Exception:
            self._not_started(batch, idempotency_key)
            raise
        self.store.set_execution(batch_id, started["executionArn"])
        batch.execution_arn = started["executionArn"]
        return batch, True

    def _not_started(self, batch: Batch, idempotency_key: str | None) -> None:
        try:
            self.store.finish(batch.batch_id, "failed", {"type": "not-started",
                                                         "detail": "the state machine could not be started"})
            if idempotency_key:
                self.store.release_idempotency_key(batch.owner, idempotency_key)
        except Exception:
            logger.exception("cannot fail a batch that did not start", extra={"batch_id": batch.batch_id})

    def _owned(self, batch_id: str, owner: str) -> Batch:
        batch = self.store.get(batch_id)
        if batch.owner != owner:
            raise BatchNotFoundError(batch_id)  # another key's batch: indistinguishable from none
        return batch

    def view(self, batch_id: str, *, owner: str) -> BatchView:
        return to_view(self._settled(self._owned(batch_id, owner)))

    def _settled(self, batch: Batch) -> Batch:
        """A batch not yet ended whose execution did (failed before its finishing step could run, timed out,
        or was stopped from the console) ends now as failed: no batch waits forever. Best effort."""
        if batch.finished_at is not None or not batch.execution_arn:
            return batch
        try:
            execution = self.aws.stepfunctions.describe_execution(executionArn=batch.execution_arn)
        except Exception:
            logger.warning("cannot describe a batch's execution", extra={"batch_id": batch.batch_id})
            return batch
        status = execution.get("status")
        if status not in ("FAILED", "TIMED_OUT", "ABORTED"):
            return batch
        detail = f"the state machine's execution {status.lower().replace('_', ' ')}"
        if execution.get("error"):
            detail += f": {execution['error']}: {str(execution.get('cause') or '')[:500]}"
        self.store.finish(batch.batch_id, "failed", {"type": f"execution-{status.lower()}", "detail": detail})
        return self.store.get(batch.batch_id)

    def cancel(self, batch_id: str, *, owner: str, transform: bool = False) -> BatchView:
        """Mark the batch cancelled; for a heavy model's batch (`transform`) also stop its Batch Transform job
        (best effort: none yet, or one already ended, answers ValidationException), so that it is not run to
        its end and billed. Its state machine's .sync task then fails and Finish ends the batch cancelled."""
        batch = self._owned(batch_id, owner)
        if batch.status in TERMINAL and batch.status != "cancelled":
            raise BatchFinishedError(batch_id, batch.status)
        if batch.status != "cancelled" and not self.store.cancel(batch_id):
            raise BatchFinishedError(batch_id, self.store.get(batch_id).status)
        if transform and batch.status != "cancelled":
            self._stop_transform_job(batch_id)
        return to_view(self.store.get(batch_id))

    def _stop_transform_job(self, batch_id: str) -> None:
        from inferstack.batches.transform import job_name

        try:
            self.aws.sagemaker.stop_transform_job(TransformJobName=job_name(batch_id))
            logger.info("transform job stopped", extra={"batch_id": batch_id})
        except ClientError as exc:  # no job (not started yet: Plan sees the cancel) or already ended
            logger.info("no transform job to stop", extra={"batch_id": batch_id,
                                                           "error": exc.response.get("Error", {}).get("Code")})
        except Exception:  # the batch is cancelled regardless; its job (if any) runs on and is not collected
            logger.exception("cannot stop a batch's transform job", extra={"batch_id": batch_id})

    def results(self, batch_id: str, *, owner: str, expires_s: int = 900) -> BatchResults:
        """An ended batch's `_manifest.json`, with a presigned GET for it and for each output and errors file."""
        batch = self._owned(batch_id, owner)
        if batch.status not in TERMINAL or batch.finished_at is None:
            raise BatchNotFinishedError(batch_id, batch.status)
        bucket, prefix = parse_s3_uri(batch.output)

        def url(name: str) -> str:
            return str(self.aws.s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": prefix + name}, ExpiresIn=expires_s))

        manifest = json.loads(self.aws.s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read())
        return BatchResults(manifest=manifest, manifest_url=url(MANIFEST),
                            files=[ResultFile(name=n, url=url(n)) for n in manifest.get("files", [])],
                            errors=[ResultFile(name=n, url=url(n)) for n in manifest.get("errors", [])])

    def upload(self, *, owner: str, suffix: str) -> UploadAccepted:
        """A presigned PUT for a local file, in the batch bucket's uploads/ (expired by a lifecycle rule)."""
        owner_tag = hashlib.sha256(owner.encode()).hexdigest()[:16]
        key = f"uploads/{owner_tag}/{uuid.uuid4().hex}.{suffix}"
        url = self.aws.s3.generate_presigned_url("put_object", Params={"Bucket": self.settings.bucket, "Key": key},
                                                 ExpiresIn=UPLOAD_EXPIRES_S)
        return UploadAccepted(input=f"s3://{self.settings.bucket}/{key}", upload_url=url, expires_in=UPLOAD_EXPIRES_S)


def to_view(b: Batch) -> BatchView:
    ended = b.status in TERMINAL and b.finished_at is not None
    return BatchView(
        batch_id=b.batch_id, model=b.model, version=b.version, status=b.status, created_at=b.created_at,
        started_at=b.started_at, finished_at=b.finished_at, input=b.input, format=b.format,
        output=b.output, rows_per_chunk=b.rows_per_chunk,
        rows=RowCounts(total=b.rows_total, succeeded=b.rows_succeeded, failed=b.rows_failed),
        chunks=ChunkCounts(total=b.chunks_total, done=b.chunks_done), error=b.error, metadata=b.metadata,
        webhook=WebhookState(url=b.webhook_url, status=b.webhook_status,
                             attempts=[WebhookAttempt.model_validate(a) for a in b.webhook_attempts]),
        links=BatchLinks(self=f"/v1/batches/{b.batch_id}", manifest=f"{b.output}{MANIFEST}" if ended else None))

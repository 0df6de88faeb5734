"""Job records in DynamoDB, with large inputs and results in S3 (claim check).

One item per job (`pk = job#<id>`) and one per idempotency key (`pk = idem#<owner>#<key>`). Every state
change is a conditional write, so a job reaches exactly one terminal state however often its message is
delivered: `queued -> running -> succeeded | failed`, and `running` may be re-entered by a redelivery after
a worker died.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from inferstack.aws import AwsClients
from inferstack.jobs.exceptions import IdempotencyInProgressError, JobNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UpdateTypeDef

Status = Literal["queued", "running", "succeeded", "failed"]
TERMINAL: tuple[Status, ...] = ("succeeded", "failed")
#: Results above this many bytes of JSON go to S3 (a DynamoDB item holds at most 400 KB).
INLINE_RESULT_BYTES = 300_000
#: Results above this many bytes are offered as a presigned URL instead of inline (Lambda's 6 MB response).
INLINE_READ_BYTES = 4_000_000

#: Claims of one batch in flight at once (boto3 clients are thread-safe; a batch holds at most 10 jobs, or
#: more with a batching window).
CLAIM_CONCURRENCY = 10

_ser, _de = TypeSerializer(), TypeDeserializer()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(values: dict[str, Any]) -> dict[str, AttributeValueTypeDef]:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class IdempotencyRecord:
    """Who holds an idempotency key: the job it was claimed for, the body's hash, when (epoch seconds)."""

    job_id: str
    request_hash: str
    claimed_at: float


@dataclass
class Job:
    job_id: str
    owner: str
    model: str
    status: Status
    created_at: str
    request_hash: str = ""
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    result: Any = None
    result_ref: str | None = None
    error: dict[str, str] | None = None
    last_error: str | None = None
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_status: str = "none"
    webhook_attempts: list[dict[str, Any]] = field(default_factory=list)
    #: The model version that ran the job.
    model_version: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        d = _plain(item)
        return cls(
            job_id=d["job_id"], owner=d["owner"], model=d["model"], status=d["status"], created_at=d["created_at"],
            request_hash=d.get("request_hash", ""), updated_at=d.get("updated_at"), started_at=d.get("started_at"),
            finished_at=d.get("finished_at"), attempts=int(d.get("attempts", 0)),
            result=json.loads(d["result"]) if "result" in d else None, result_ref=d.get("result_ref"),
            error=d.get("error"), last_error=d.get("last_error"),
            metadata=json.loads(d["metadata"]) if "metadata" in d else None, webhook_url=d.get("webhook_url"),
            webhook_status=d.get("webhook_status", "none"),
            webhook_attempts=[{k: int(v) if isinstance(v, Decimal) else v for k, v in a.items()}
                              for a in d.get("webhook_attempts", [])],
            model_version=d.get("model_version"),
        )


class JobStore:
    def __init__(self, aws: AwsClients, *, table: str, bucket: str, ttl_days: int) -> None:
        self.aws, self.table, self.bucket, self.ttl_days = aws, table, bucket, ttl_days
        self._executor: ThreadPoolExecutor | None = None

    # -- blobs (claim check) ------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> str:
        self.aws.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        return key

    def get_blob(self, key: str) -> bytes:
        return self.aws.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def blob_url(self, key: str, expires_s: int = 900) -> str:
        return self.aws.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=expires_s)

    # -- records ------------------------------------------------------------------------------------
    def _expires_at(self) -> int:
        return int(time.time()) + self.ttl_days * 86400

    def create(self, job: Job) -> None:
        self.aws.dynamodb.put_item(
            TableName=self.table,
            Item=_item({
                "pk": f"job#{job.job_id}", "job_id": job.job_id, "owner": job.owner, "model": job.model,
                "status": job.status, "created_at": job.created_at, "updated_at": job.created_at,
                "request_hash": job.request_hash, "attempts": 0,
                "metadata": json.dumps(job.metadata) if job.metadata is not None else None,
                "webhook_url": job.webhook_url, "webhook_status": "pending" if job.webhook_url else "none",
                "webhook_attempts": [], "expires_at": self._expires_at(),
            }),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, job_id: str) -> Job:
        found = self.aws.dynamodb.get_item(TableName=self.table, Key=_item({"pk": f"job#{job_id}"}),
                                           ConsistentRead=True).get("Item")
        if not found:
            raise JobNotFoundError(job_id)
        return Job.from_item(found)

    def _idempotency_item(self, owner: str, key: str, request_hash: str, job_id: str) -> dict[str, Any]:
        return _item({"pk": f"idem#{owner}#{key}", "job_id": job_id, "request_hash": request_hash,
                      "claimed_at": int(time.time()), "expires_at": self._expires_at()})

    def claim_idempotency_key(self, owner: str, key: str, request_hash: str, job_id: str
                              ) -> IdempotencyRecord | None:
        """Reserve `key` for `job_id`. Returns None when reserved now, or the record that already holds it (the
        caller compares bodies, and looks its job up)."""
        pk = f"idem#{owner}#{key}"
        for _ in range(3):  # a key released between the put and the get is free again
            try:
                self.aws.dynamodb.put_item(TableName=self.table, ConditionExpression="attribute_not_exists(pk)",
                                           Item=self._idempotency_item(owner, key, request_hash, job_id))
                return None
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise
            found = self.aws.dynamodb.get_item(TableName=self.table, Key=_item({"pk": pk}),
                                               ConsistentRead=True).get("Item")
            if found:
                existing = _plain(found)
                return IdempotencyRecord(str(existing["job_id"]), str(existing["request_hash"]),
                                         float(existing.get("claimed_at", 0)))
        raise IdempotencyInProgressError(key)

    def take_over_idempotency_key(self, owner: str, key: str, stale: IdempotencyRecord, request_hash: str,
                                  job_id: str) -> bool:
        """Point `key` at `job_id` instead of `stale`'s job, which does not exist (its submission failed before
        storing it). False when another submission changed the key first."""
        try:
            self.aws.dynamodb.put_item(TableName=self.table, ConditionExpression="job_id = :stale",
                                       Item=self._idempotency_item(owner, key, request_hash, job_id),
                                       ExpressionAttributeValues=_item({":stale": stale.job_id}))
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def _claim_update(self, job_id: str, stamp: str) -> UpdateTypeDef:
        return {
            "TableName": self.table, "Key": _item({"pk": f"job#{job_id}"}),
            "UpdateExpression": "SET #s = :running, updated_at = :now, started_at = if_not_exists(started_at, :now) "
                                "ADD attempts :one",
            "ConditionExpression": "attribute_exists(pk) AND #s IN (:queued, :running)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": _item({":running": "running", ":queued": "queued", ":now": stamp,
                                                ":one": 1}),
        }

    def release_idempotency_key(self, owner: str, key: str) -> None:
        self.aws.dynamodb.delete_item(TableName=self.table, Key=_item({"pk": f"idem#{owner}#{key}"}))

    def claim(self, job_ids: list[str]) -> tuple[set[str], dict[str, Exception]]:
        """Mark each job running and count its attempt: one conditional `UpdateItem` per job, each on its own.

        Returns the IDs claimed, and the jobs whose claim failed transiently (throttling, the store unreachable),
        with the error: only those are retried. A job that is finished or unknown is in neither (its delivery is
        a duplicate, to be dropped). Per job, not one `TransactWriteItems`: a job's claim needs no other job's,
        the condition alone keeps it to one terminal state, and a transactional write costs twice the write
        units; one job's failed claim no longer fails its batch either."""
        stamp = now_iso()
        unique = list(dict.fromkeys(job_ids))
        client = self.aws.dynamodb  # made here, once: creating a boto3 client is not thread-safe, using one is
        if len(unique) > 1:  # the calls overlap: a batch's claims take about one round trip, not ten
            outcomes = list(self._pool().map(lambda i: self._claim_one(client, i, stamp), unique))
        else:
            outcomes = [self._claim_one(client, i, stamp) for i in unique]
        claimed = {i for i, o in zip(unique, outcomes, strict=True) if o is True}
        errors = {i: o for i, o in zip(unique, outcomes, strict=True) if isinstance(o, Exception)}
        return claimed, errors

    def _claim_one(self, client: DynamoDBClient, job_id: str, stamp: str) -> bool | Exception:
        try:
            client.update_item(**self._claim_update(job_id, stamp))
            return True
        except ClientError as exc:
            return False if _conditional_failed(exc) else exc
        except Exception as exc:  # the store unreachable: the next delivery tries again
            return exc

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=CLAIM_CONCURRENCY, thread_name_prefix="claim")
        return self._executor

    def release(self, job_id: str) -> bool:
        """Put a claimed job back to `queued`, its attempt uncounted: it waits for its model (a heavy model
        scaling out from zero). False when it is no longer running."""
        try:
            self.aws.dynamodb.update_item(
                TableName=self.table, Key=_item({"pk": f"job#{job_id}"}),
                UpdateExpression="SET #s = :queued, updated_at = :now ADD attempts :minus",
                ConditionExpression="#s = :running", ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_item({":queued": "queued", ":running": "running", ":now": now_iso(),
                                                 ":minus": -1}))
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def finish(self, job_id: str, *, result: Any = None, error: dict[str, str] | None = None,
               version: str | None = None) -> bool:
        """Move a job to its terminal state; False when another delivery got there first. `version`: the model
        version that ran it."""
        stamp = now_iso()
        values: dict[str, Any] = {":queued": "queued", ":running": "running", ":now": stamp}
        sets = ["#s = :status", "updated_at = :now", "finished_at = :now"]
        if version is not None:
            values[":version"] = version
            sets.append("model_version = :version")
        if error is not None:
            values[":status"], values[":error"] = "failed", error
            sets.append("#e = :error")
        else:
            values[":status"] = "succeeded"
            payload = json.dumps(result, separators=(",", ":"))
            if len(payload) > INLINE_RESULT_BYTES:
                values[":ref"] = self.put_blob(f"results/{job_id}.json", payload.encode())
                sets.append("result_ref = :ref")
            else:
                values[":result"] = payload
                sets.append("#r = :result")
        try:
            self.aws.dynamodb.update_item(
                TableName=self.table, Key=_item({"pk": f"job#{job_id}"}),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(pk) AND #s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "status", **{n: a for n, a in (("#e", "error"), ("#r", "result"))
                                                              if any(n in part for part in sets)}},
                ExpressionAttributeValues=_item(values))
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def note_error(self, job_id: str, message: str) -> None:
        """Remember the last transient error, for the reason given when the job lands in the DLQ."""
        self.aws.dynamodb.update_item(
            TableName=self.table, Key=_item({"pk": f"job#{job_id}"}), UpdateExpression="SET last_error = :m",
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=_item({":m": message[:1000]}))

    def record_webhook_attempt(self, job_id: str, attempt: dict[str, Any], status: str, *,
                               record: str = "job") -> None:
        """`record`: whose webhook it is, a job's or (`batch`) a batch's."""
        self.aws.dynamodb.update_item(
            TableName=self.table, Key=_item({"pk": f"{record}#{job_id}"}),
            UpdateExpression="SET webhook_attempts = list_append(if_not_exists(webhook_attempts, :empty), :a), "
                             "webhook_status = :s, updated_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_item({":a": [attempt], ":empty": [], ":s": status, ":now": now_iso()}))

    def fail_webhook(self, job_id: str, attempt: dict[str, Any]) -> bool:
        """Mark a job's webhook failed (its message was dead-lettered), recording why; False when its webhook
        is no longer pending (delivered, gone or failed already) or the job is gone."""
        try:
            self.aws.dynamodb.update_item(
                TableName=self.table, Key=_item({"pk": f"job#{job_id}"}),
                UpdateExpression="SET webhook_attempts = list_append(if_not_exists(webhook_attempts, :empty), :a), "
                                 "webhook_status = :failed, updated_at = :now",
                ConditionExpression="attribute_exists(pk) AND webhook_status = :pending",
                ExpressionAttributeValues=_item({":a": [attempt], ":empty": [], ":failed": "failed",
                                                 ":pending": "pending", ":now": now_iso()}))
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def load_result(self, job: Job) -> tuple[Any, str | None]:
        """The job's result, and a presigned URL instead when it is too large to return inline."""
        if job.result_ref is None:
            return job.result, None
        head = self.aws.s3.head_object(Bucket=self.bucket, Key=job.result_ref)
        if head["ContentLength"] > INLINE_READ_BYTES:
            return None, self.blob_url(job.result_ref)
        return json.loads(self.get_blob(job.result_ref)), None

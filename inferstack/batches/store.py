"""Batch records in the jobs table, beside the jobs.

One item per batch (`pk = batch#<id>`), one per idempotency key (`pk = batch-idem#<owner>#<key>`), and one
marker per scored chunk (`pk = batch#<id>#chunk#<n>`). A chunk's counts are added in the same transaction
that writes its marker, so a chunk that is retried or delivered twice is counted once.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from inferstack.aws import AwsClients
from inferstack.batches.exceptions import BatchNotFoundError
from inferstack.batches.schemas import BatchStatus, Format
from inferstack.jobs.exceptions import IdempotencyConflictError
from inferstack.jobs.store import _conditional_failed, _item, _plain, now_iso

ACTIVE = ("queued", "running")


@dataclass
class Batch:
    batch_id: str
    owner: str
    model: str
    version: str
    status: BatchStatus
    created_at: str
    input: str
    format: Format
    output: str
    rows_per_chunk: int
    request_hash: str = ""
    columns: dict[str, list[str]] | None = None
    header: list[str] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    rows_total: int | None = None
    chunks_total: int | None = None
    rows_succeeded: int = 0
    rows_failed: int = 0
    chunks_done: int = 0
    execution_arn: str | None = None
    error: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_status: str = "none"
    webhook_attempts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Batch:
        d = _plain(item)
        ints = {k: int(d[k]) for k in ("rows_total", "chunks_total") if k in d}
        return cls(
            batch_id=d["batch_id"], owner=d["owner"], model=d["model"], version=d["version"], status=d["status"],
            created_at=d["created_at"], input=d["input"], format=d["format"], output=d["output"],
            rows_per_chunk=int(d["rows_per_chunk"]), request_hash=d.get("request_hash", ""),
            columns=json.loads(d["columns"]) if "columns" in d else None,
            header=json.loads(d["header"]) if "header" in d else None, started_at=d.get("started_at"),
            finished_at=d.get("finished_at"), rows_succeeded=int(d.get("rows_succeeded", 0)),
            rows_failed=int(d.get("rows_failed", 0)), chunks_done=int(d.get("chunks_done", 0)),
            execution_arn=d.get("execution_arn"), error=d.get("error"),
            metadata=json.loads(d["metadata"]) if "metadata" in d else None, webhook_url=d.get("webhook_url"),
            webhook_status=d.get("webhook_status", "none"),
            webhook_attempts=[{k: int(v) if isinstance(v, Decimal) else v for k, v in a.items()}
                              for a in d.get("webhook_attempts", [])],
            **ints)


class BatchStore:
    def __init__(self, aws: AwsClients, *, table: str, ttl_days: int) -> None:
        self.aws, self.table, self.ttl_days = aws, table, ttl_days

    def _expires_at(self) -> int:
        return int(time.time()) + self.ttl_days * 86400

    def _key(self, batch_id: str) -> Any:
        return _item({"pk": f"batch#{batch_id}"})

    def create(self, b: Batch) -> None:
        self.aws.dynamodb.put_item(
            TableName=self.table,
            Item=_item({
                "pk": f"batch#{b.batch_id}", "batch_id": b.batch_id, "owner": b.owner, "model": b.model,
                "version": b.version, "status": b.status, "created_at": b.created_at, "input": b.input,
                "format": b.format, "output": b.output, "rows_per_chunk": b.rows_per_chunk,
                "request_hash": b.request_hash, "columns": json.dumps(b.columns) if b.columns else None,
                "rows_succeeded": 0, "rows_failed": 0, "chunks_done": 0,
                "metadata": json.dumps(b.metadata) if b.metadata is not None else None,
                "webhook_url": b.webhook_url, "webhook_status": "pending" if b.webhook_url else "none",
                "webhook_attempts": [], "expires_at": self._expires_at(),
            }),
            ConditionExpression="attribute_not_exists(pk)")

    def get(self, batch_id: str) -> Batch:
        found = self.aws.dynamodb.get_item(TableName=self.table, Key=self._key(batch_id),
                                           ConsistentRead=True).get("Item")
        if not found or "owner" not in found:
            raise BatchNotFoundError(batch_id)
        return Batch.from_item(found)

    def claim_idempotency_key(self, owner: str, key: str, request_hash: str, batch_id: str) -> str | None:
        """Reserve `key` for `batch_id`: None when reserved now, the batch that holds it (same body), or
        `IdempotencyConflictError` (another body)."""
        pk = f"batch-idem#{owner}#{key}"
        try:
            self.aws.dynamodb.put_item(
                TableName=self.table, Item=_item({"pk": pk, "batch_id": batch_id, "request_hash": request_hash,
                                                  "expires_at": self._expires_at()}),
                ConditionExpression="attribute_not_exists(pk)")
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        existing = _plain(self.aws.dynamodb.get_item(TableName=self.table, Key=_item({"pk": pk}),
                                                     ConsistentRead=True)["Item"])
        if existing["request_hash"] != request_hash:
            raise IdempotencyConflictError(key, existing["batch_id"])
        return str(existing["batch_id"])

    def release_idempotency_key(self, owner: str, key: str) -> None:
        self.aws.dynamodb.delete_item(TableName=self.table, Key=_item({"pk": f"batch-idem#{owner}#{key}"}))

    def _update(self, batch_id: str, sets: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
        names = {f"#{k}": k for k in sets}
        if "#status" in condition:
            names["#status"] = "status"
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        try:
            self.aws.dynamodb.update_item(
                TableName=self.table, Key=self._key(batch_id), UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item({**{f":{k}": v for k, v in sets.items()}, **values}))
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def set_execution(self, batch_id: str, arn: str) -> None:
        self._update(batch_id, {"execution_arn": arn}, "attribute_exists(pk)", {})

    def planned(self, batch_id: str, *, rows: int, chunks: int, header: list[str] | None) -> bool:
        """queued -> running, with the input's size (and a CSV file's header); False when no longer queued
        (cancelled)."""
        sets: dict[str, Any] = {"status": "running", "started_at": now_iso(), "rows_total": rows,
                                "chunks_total": chunks}
        if header is not None:
            sets["header"] = json.dumps(header)
        return self._update(batch_id, sets, "#status IN (:queued, :running)",
                            {":queued": "queued", ":running": "running"})

    def cancel(self, batch_id: str) -> bool:
        """Ask a queued or running batch to stop: its remaining chunks are skipped, the finishing step writes
        its manifest. False when it already ended."""
        return self._update(batch_id, {"status": "cancelled"}, "#status IN (:queued, :running)",
                            {":queued": "queued", ":running": "running"})

    def chunk_done(self, batch_id: str, index: int, *, succeeded: int, failed: int, attempts: int = 8) -> bool:
        """Count a chunk once: its marker and the batch's counters in one transaction. False when the chunk
        was counted before (a retry or a second delivery). Chunks finishing together contend for the batch's
        item: a transaction cancelled by that conflict is tried again after a short jittered wait."""
        for attempt in range(attempts):
            try:
                self.aws.dynamodb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table, "ConditionExpression": "attribute_not_exists(pk)",
                             "Item": _item({"pk": f"batch#{batch_id}#chunk#{index}", "succeeded": succeeded,
                                            "failed": failed, "at": now_iso(), "expires_at": self._expires_at()})}},
                    {"Update": {"TableName": self.table, "Key": self._key(batch_id),
                                "UpdateExpression": "ADD rows_succeeded :s, rows_failed :f, chunks_done :one",
                                "ConditionExpression": "attribute_exists(pk)",
                                "ExpressionAttributeValues": _item({":s": succeeded, ":f": failed, ":one": 1})}},
                ])
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if "TransactionConflict" not in reasons or attempt == attempts - 1:
                    raise
                time.sleep(random.random() * min(1.0, 0.02 * 2 ** attempt))
        raise AssertionError("unreachable")

    def finish(self, batch_id: str, status: BatchStatus, error: dict[str, str] | None = None) -> bool:
        """Record the end (once): a cancelled batch stays cancelled. False when it had already ended."""
        sets: dict[str, Any] = {"finished_at": now_iso()}
        values: dict[str, Any] = {":cancelled": "cancelled"}
        if error is not None:
            sets["error"] = error
        condition = "attribute_not_exists(finished_at)"
        if status != "cancelled":
            # a cancelled batch keeps its status; any other ends as told
            sets_status = {**sets, "status": status}
            if self._update(batch_id, sets_status, condition + " AND #status <> :cancelled", values):
                return True
        return self._update(batch_id, sets, condition + " AND #status = :cancelled", values)

"""The batch function: the three steps of a model's batch state machine.

- `plan` (the first state): reads the input once as a stream, splits it into line-aligned chunks, writes the
  chunk plan (a JSON array, what the Distributed Map's `ItemReader` reads) and the batch's size.
- a chunk event (each child of the Distributed Map): `{"Items": [chunk, ...], "BatchInput": {...}}`, the
  `ItemBatcher` shape. Each chunk's byte range is read, its rows validated and scored as stacked calls, its
  output and errors written as `part-NNNNN.jsonl` / `errors-NNNNN.jsonl` (the same names on every attempt, so
  a retried chunk replaces its files, never duplicates lines), then counted once (`BatchStore.chunk_done`).
  A cancelled batch's chunks are skipped.
- `finish` (after the Map, or from its Catch): `_manifest.json` with counts, files, model, version and timings;
  the batch's end state; its signed webhook.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from inferstack.aws import AwsClients
from inferstack.batches.plan import Plan, plan_chunks
from inferstack.batches.rows import ChunkRows, Scored, score
from inferstack.batches.schemas import MANIFEST, TERMINAL, BatchContext, BatchStatus, Chunk, parse_s3_uri
from inferstack.batches.settings import BatchSettings
from inferstack.batches.store import Batch, BatchStore
from inferstack.jobs.schemas import WebhookMessage
from inferstack.jobs.store import now_iso
from inferstack.jobs.worker import Runner
from inferstack.observability import logger

BLOCK_BYTES = 8 << 20


def part_key(prefix: str, index: int, kind: str = "part") -> str:
    return f"{prefix}{kind}-{index:05d}.jsonl"


def plan_key(batch_id: str) -> str:
    return f"plans/{batch_id}/chunks.json"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = dt.datetime.fromisoformat
    return round((parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds(), 3)


def batch_event(batch: Batch) -> dict[str, Any]:
    """The webhook event (and what `_manifest.json` holds): the batch's end state and counts."""
    data: dict[str, Any] = {
        "batch_id": batch.batch_id, "model": batch.model, "version": batch.version, "status": batch.status,
        "input": batch.input, "format": batch.format, "output": batch.output,
        "rows": {"total": batch.rows_total, "succeeded": batch.rows_succeeded, "failed": batch.rows_failed},
        "chunks": {"total": batch.chunks_total, "done": batch.chunks_done},
        "links": {"self": f"/v1/batches/{batch.batch_id}", "manifest": f"{batch.output}{MANIFEST}"},
    }
    if batch.error:
        data["error"] = batch.error
    if batch.metadata is not None:
        data["metadata"] = batch.metadata
    return {"type": f"batch.{batch.status}", "timestamp": now_iso(), "data": data}


class BatchEnd:
    """What every batch state machine's steps share (light or Batch Transform): reading the input, writing a
    chunk's files and counts, and the last step (manifest, end state, webhook)."""

    def __init__(self, settings: BatchSettings, aws: AwsClients, store: BatchStore, *, webhook_queue: str = "") -> None:
        self.settings, self.aws, self.store, self.webhook_queue = settings, aws, store, webhook_queue

    def _blocks(self, uri: str) -> Iterator[bytes]:
        bucket, key = parse_s3_uri(uri)
        body = self.aws.s3.get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_chunks(BLOCK_BYTES)

    def write_chunk(self, ctx: BatchContext, index: int, scored: Scored) -> None:
        """A chunk's output and errors files (the same names on every attempt), then its counts, once."""
        out_bucket, prefix = parse_s3_uri(ctx.output)
        self.aws.s3.put_object(Bucket=out_bucket, Key=part_key(prefix, index),
                               Body=_jsonl(scored.outputs), ContentType="application/x-ndjson")
        if scored.errors:
            self.aws.s3.put_object(Bucket=out_bucket, Key=part_key(prefix, index, "errors"),
                                   Body=_jsonl(scored.errors), ContentType="application/x-ndjson")
        self.store.chunk_done(ctx.batch_id, index, succeeded=scored.succeeded, failed=scored.failed)

    # -- finish --------------------------------------------------------------------------------------
    def _files(self, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
        parts: list[str] = []
        errors: list[str] = []
        for page in self.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if "/" in name:
                    continue
                if name.startswith("part-"):
                    parts.append(name)
                elif name.startswith("errors-"):
                    errors.append(name)
        return sorted(parts), sorted(errors)

    def finish(self, state: dict[str, Any], error: dict[str, Any] | None = None) -> dict[str, Any]:
        batch_id = state["batch_id"]
        batch = self.store.get(batch_id)
        failure = None
        if error:
            failure = {"type": str(error.get("Error", "failed")), "detail": _cause(error.get("Cause"))}
        status: BatchStatus = "failed" if failure else "succeeded"
        if not failure and batch.chunks_total is not None and batch.chunks_done < batch.chunks_total \
                and batch.status != "cancelled":
            status = "failed"
            failure = {"type": "chunks-failed", "detail": f"{batch.chunks_total - batch.chunks_done} of "
                       f"{batch.chunks_total} chunks failed after their retries (within the tolerated percentage)"}
        ended_now = self.store.finish(batch_id, status, failure)
        batch = self.store.get(batch_id)
        bucket, prefix = parse_s3_uri(batch.output)
        parts, errors = self._files(bucket, prefix)
        document = batch_event(batch)["data"]
        document.update({"files": parts, "errors": errors, "timings": {
            "created_at": batch.created_at, "started_at": batch.started_at, "finished_at": batch.finished_at,
            "seconds": _seconds(batch.started_at, batch.finished_at)}})
        self.aws.s3.put_object(Bucket=bucket, Key=f"{prefix}{MANIFEST}", ContentType="application/json",
                               Body=json.dumps(document, indent=2).encode())
        if ended_now and batch.webhook_url and self.webhook_queue:
            message = WebhookMessage(job_id=batch_id, url=batch.webhook_url, event=batch_event(batch),
                                     record="batch")
            self.aws.sqs.send_message(QueueUrl=self.webhook_queue, MessageBody=message.model_dump_json())
        logger.info("batch ended", extra={"batch_id": batch_id, "status": batch.status})
        return {"status": batch.status, "rows": batch.rows_succeeded, "failed": batch.rows_failed}


class BatchFunction(BatchEnd):
    def __init__(self, settings: BatchSettings, aws: AwsClients, store: BatchStore, runner: Runner, *,
                 rows: ChunkRows, handler: bool, model: str, version: str, webhook_queue: str = "") -> None:
        super().__init__(settings, aws, store, webhook_queue=webhook_queue)
        self.runner = runner
        self.rows, self.handler, self.model, self.version = rows, handler, model, version

    # -- the entry point -----------------------------------------------------------------------------
    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if "Items" in event:
            model = (event.get("BatchInput") or {}).get("model")
            if model != self.model:
                raise ValueError(f"a chunk of model {model!r} reached the batch function of {self.model!r}")
            return self.score_items([Chunk.model_validate(i) for i in event["Items"]])
        action = event.get("action")
        if action == "plan":
            return self.plan(event["batch"])
        if action == "finish":  # after the Map, or from a Catch (which put the error at $.error)
            return self.finish(event["batch"], event["batch"].get("error"))
        raise ValueError(f"unknown batch event: keys {sorted(event)}")

    # -- plan ----------------------------------------------------------------------------------------
    def plan(self, state: dict[str, Any]) -> dict[str, Any]:
        batch = self.store.get(state["batch_id"])
        if batch.status in TERMINAL:
            plan = Plan()
        else:
            plan = plan_chunks(self._blocks(batch.input), batch.rows_per_chunk, header=batch.format == "csv",
                               batch_id=batch.batch_id)
            if batch.format == "csv":
                batch.header = plan.header
                self.rows.columns(context(batch))  # raises: a CSV file whose columns do not fit fails at once
        body = json.dumps([c.model_dump() for c in plan.chunks], separators=(",", ":")).encode()
        key = plan_key(batch.batch_id)
        self.aws.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body, ContentType="application/json")
        self.store.planned(batch.batch_id, rows=plan.rows, chunks=len(plan.chunks), header=plan.header)
        logger.info("batch planned", extra={"batch_id": batch.batch_id, "rows": plan.rows,
                                            "chunks": len(plan.chunks), "bytes": plan.size})
        return {"bucket": self.settings.bucket, "key": key, "chunks": len(plan.chunks), "rows": plan.rows}

    # -- score ---------------------------------------------------------------------------------------
    def score_items(self, chunks: list[Chunk]) -> dict[str, Any]:
        done = failed = skipped = 0
        for chunk in chunks:
            batch = self.store.get(chunk.batch_id)
            if batch.status == "cancelled":
                skipped += 1
                continue
            scored = self.score_chunk(context(batch), chunk)
            done += scored.succeeded
            failed += scored.failed
        return {"chunks": len(chunks) - skipped, "skipped": skipped, "rows": done, "failed": failed}

    def score_chunk(self, ctx: BatchContext, chunk: Chunk) -> Scored:
        bucket, key = parse_s3_uri(ctx.input)
        data = self.aws.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={chunk.start}-{chunk.end - 1}")[
            "Body"].read() if chunk.end > chunk.start else b""
        scored = Scored()
        rows = self.rows.parse(data, chunk.first_line, ctx, scored)
        del data
        score(self.runner, rows, scored, handler=self.handler)
        self.write_chunk(ctx, chunk.index, scored)
        return scored


def context(batch: Batch) -> BatchContext:
    return BatchContext(batch_id=batch.batch_id, input=batch.input, format=batch.format, output=batch.output,
                        columns=batch.columns, header=batch.header)


def _jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _cause(cause: Any) -> str:
    """A Catch's `Cause`: for a Lambda error, the JSON of its error document; its message is what matters."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            if isinstance(parsed, dict) and "errorMessage" in parsed:
                return str(parsed["errorMessage"])[:1000]
        except ValueError:
            pass
        return cause[:1000]
    return str(cause)[:1000]

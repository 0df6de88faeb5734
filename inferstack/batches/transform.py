"""The batch function of a heavy model: the Lambda steps around its SageMaker Batch Transform job.

    Plan -> Transform (CreateTransformJob, .sync) -> Finish

- `plan`: counts the input's lines (read once as a stream), writes the job's S3 manifest
  file naming exactly the input object (an S3 prefix would also match `x.jsonl.bak`), and returns the job's
  name, manifest and output location for the Transform state.
- the Transform state: a Batch Transform job of the endpoint's own SageMaker model (same image, same model
  data), `SplitType: Line`, `BatchStrategy: MultiRecord`, `AssembleWith: Line`: the container answers each
  JSON Lines request with one line per line (`inferstack.heavy.jsonlines`), so the job's `<input>.out` holds
  one answer per input line, in order.
- `finish`: pairs the input's lines with the `.out` lines, by position, and writes them as the light tier does
  (`part-NNNNN.jsonl` `{"line", "id"?, "outputs"}`, `errors-NNNNN.jsonl` `{"line", "id"?, "error"}`, in chunks of
  `rows_per_chunk`, each counted once), then the manifest, end state and webhook (`BatchEnd.finish`). An `.out`
  file whose line count differs from the input's fails the batch, naming both counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from inferstack.batches.rows import Scored
from inferstack.batches.schemas import TERMINAL, parse_s3_uri
from inferstack.batches.scorer import BatchEnd, context
from inferstack.observability import logger

JSONLINES = "application/jsonlines"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def job_name(batch_id: str) -> str:
    return f"inferstack-batch-{batch_id}"[:63]


def manifest_key(batch_id: str) -> str:
    return f"plans/{batch_id}/transform.manifest"


def transform_prefix(batch_id: str) -> str:
    return f"transform/{batch_id}/"


def lines_of(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream, split on newlines as Batch Transform's `SplitType: Line` does (the last line may
    lack its newline)."""
    pending = b""
    for block in blocks:
        pending += block
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def count_lines(blocks: Iterable[bytes]) -> int:
    """The lines `lines_of` yields, counted a block at a time (no numpy here: this function has no model)."""
    count, last = 0, b"\n"
    for block in blocks:
        if block:
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


class BatchEndedError(RuntimeError):
    """The batch ended (was cancelled) before its job started: Plan fails with this, Finish ends it quietly."""


class TransformMismatchError(RuntimeError):
    """The job's output does not have one line per input line."""


class TransformFunction(BatchEnd):
    def handle(self, event: dict[str, Any], context_: Any = None) -> dict[str, Any]:
        action = event.get("action")
        if action == "plan":
            return self.plan(event["batch"])
        if action == "finish":
            batch = event["batch"]
            error = batch.get("error")
            if error and error.get("Error") == BatchEndedError.__name__:  # cancelled before its job: no failure
                error = None
            elif error and self.store.get(batch["batch_id"]).status == "cancelled":  # its job was stopped
                error = self.stopped(batch, error)
            if not error:
                try:
                    self.collect(batch["batch_id"])
                except TransformMismatchError as exc:
                    error = {"Error": "transform-output-mismatch", "Cause": str(exc)}
            return self.finish(batch, error)
        raise ValueError(f"unknown batch event: keys {sorted(event)}")

    def plan(self, state: dict[str, Any]) -> dict[str, Any]:
        batch = self.store.get(state["batch_id"])
        if batch.format != "jsonl":
            raise ValueError(f"format: a heavy model scores JSON Lines files only, not {batch.format}")
        if batch.status in TERMINAL:  # cancelled before it started: no job (Catch -> Finish)
            raise BatchEndedError(f"batch {batch.batch_id} is {batch.status}: no transform job")
        rows = count_lines(self._blocks(batch.input))
        chunks = -(-rows // batch.rows_per_chunk)
        bucket, key = parse_s3_uri(batch.input)
        folder, _, name = key.rpartition("/")
        document = [{"prefix": f"s3://{bucket}/{folder}/" if folder else f"s3://{bucket}/"}, name]
        self.aws.s3.put_object(Bucket=self.settings.bucket, Key=manifest_key(batch.batch_id),
                               Body=json.dumps(document).encode(), ContentType="application/json")
        self.store.planned(batch.batch_id, rows=rows, chunks=chunks, header=None)
        logger.info("batch planned", extra={"batch_id": batch.batch_id, "rows": rows, "transform": True})
        return {"job_name": job_name(batch.batch_id),
                "manifest": f"s3://{self.settings.bucket}/{manifest_key(batch.batch_id)}",
                "output": f"s3://{self.settings.bucket}/{transform_prefix(batch.batch_id)}",
                "rows": rows}

    def stopped(self, state: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
        """The batch was cancelled while its job ran (DELETE stopped the job: the .sync task failed with it
        Stopped): what it got to, as the cancelled batch's error. A stopped job's answers are not collected."""
        rows = self.store.get(state["batch_id"]).rows_total
        name = (state.get("plan") or {}).get("job_name") or job_name(state["batch_id"])
        status = "Stopped" if "Stopped" in str(error.get("Cause")) else f"ended ({error.get('Error')})"
        return {"Error": "transform-stopped", "Cause": f"cancelled while its transform job {name} ran: the job "
                f"was {status} before scoring all {rows} lines; no answers were collected"}

    def collect(self, batch_id: str) -> None:
        """The job's answers, paired with their input lines, as the batch's output and errors files."""
        batch = self.store.get(batch_id)
        if batch.status == "cancelled" or not batch.rows_total:
            return
        _, key = parse_s3_uri(batch.input)
        out_uri = f"s3://{self.settings.bucket}/{transform_prefix(batch_id)}{key.rpartition('/')[2]}.out"
        ctx = context(batch)
        answers = lines_of(self._blocks(out_uri))
        scored, index, n = Scored(), 0, 0
        for n, _line in enumerate(lines_of(self._blocks(batch.input)), start=1):
            answer = next(answers, None)
            if answer is None:
                raise TransformMismatchError(f"the transform job answered {n - 1} lines for "
                                             f"{batch.rows_total} input lines")
            _add(scored, n, answer)
            if n % batch.rows_per_chunk == 0:
                self.write_chunk(ctx, index, scored)
                scored, index = Scored(), index + 1
        extra = sum(1 for _ in answers)
        if extra:
            raise TransformMismatchError(f"the transform job answered {n + extra} lines for {n} input lines")
        if scored.outputs or scored.errors:
            self.write_chunk(ctx, index, scored)


def _add(scored: Scored, line: int, answer: bytes) -> None:
    """One answer line of the container (`{"id"?, "outputs"}` or `{"id"?, "error"}`), numbered."""
    try:
        value = json.loads(answer)
    except ValueError:
        value = None
    if type(value) is not dict or not ("outputs" in value or "error" in value):
        scored.errors.append(_dumps({"line": line, "error": {
            "type": "inference-error", "detail": "the model's container answered this line with no result"}}))
        return
    head: dict[str, Any] = {"line": line}
    if value.get("id") is not None:
        head["id"] = value["id"]
    if "outputs" in value:
        scored.outputs.append(_dumps({**head, "outputs": value["outputs"]}))
    else:
        scored.errors.append(_dumps({**head, "error": value["error"]}))

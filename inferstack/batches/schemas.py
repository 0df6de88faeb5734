"""Bodies of the batches routes, the batch record's public view, and the events between the state machine's
steps (the shapes the Distributed Map hands the batch function)."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inferstack.jobs.schemas import MAX_METADATA_BYTES, WebhookSpec, WebhookState

Format = Literal["jsonl", "csv"]
BatchStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: tuple[BatchStatus, ...] = ("succeeded", "failed", "cancelled")
#: What the finishing step writes under the output prefix: counts, files, model and version, timings.
MANIFEST = "_manifest.json"
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.*)$")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError naming what is wrong."""
    found = _S3_URI.match(uri)
    if not found:
        raise ValueError(f"{uri!r} is not an S3 URI: expected s3://<bucket>/<key>")
    return found.group(1), found.group(2)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    input: str = Field(max_length=1100, description="s3://bucket/key of the file to score: one row per line")
    format: Format = Field(default="jsonl", description="jsonl: each line an object of input name -> that row's "
                           "value, with an optional \"id\"; csv: a header line, then one row per line")
    output: str | None = Field(default=None, max_length=1100, description="s3://bucket/prefix/ to write the "
                               "results under (default: the stack's batch bucket, outputs/<batch_id>/)")
    rows_per_chunk: int | None = Field(default=None, ge=1, le=1_000_000,
                                       description="rows per chunk (default: the manifest's batches.rows_per_chunk)")
    columns: dict[str, list[str]] | None = Field(
        default=None, description="csv: model input -> the header's columns that form its last axis, in order "
        "(default for a model with one input: every column but \"id\")")
    webhook: WebhookSpec | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Returned with the batch; at most 4 KB of JSON")

    @field_validator("input")
    @classmethod
    def _input_uri(cls, value: str) -> str:
        bucket, key = parse_s3_uri(value)
        if not key or key.endswith("/"):
            raise ValueError(f"{value!r} names no object: give the file's key, s3://{bucket}/<key>")
        return value

    @field_validator("output")
    @classmethod
    def _output_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_s3_uri(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class BatchLinks(BaseModel):
    self: str
    manifest: str | None = Field(default=None, description="s3:// URI of _manifest.json, once the batch ended")


class BatchAccepted(BaseModel):
    batch_id: str
    status: BatchStatus
    links: BatchLinks


class RowCounts(BaseModel):
    total: int | None = Field(default=None, description="rows in the input (known once it is planned)")
    succeeded: int = 0
    failed: int = Field(default=0, description="rows written to the errors files")


class ChunkCounts(BaseModel):
    total: int | None = None
    done: int = 0


class BatchView(BaseModel):
    batch_id: str
    model: str
    version: str
    status: BatchStatus
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    input: str
    format: Format
    output: str
    rows_per_chunk: int
    rows: RowCounts
    chunks: ChunkCounts
    error: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    webhook: WebhookState
    links: BatchLinks


class ResultFile(BaseModel):
    name: str
    url: str = Field(description="presigned GET, valid for 15 minutes")


class BatchResults(BaseModel):
    manifest: dict[str, Any] = Field(description="the batch's _manifest.json: counts, files, model, version, timings")
    manifest_url: str
    files: list[ResultFile] = Field(description="the output files, JSON Lines: {\"line\", \"id\"?, \"outputs\"}")
    errors: list[ResultFile] = Field(description="the errors files, JSON Lines: {\"line\", \"id\"?, \"error\"}")


class UploadAccepted(BaseModel):
    input: str = Field(description="the s3:// URI to submit as a batch's input once uploaded")
    upload_url: str = Field(description="presigned URL: PUT the file's bytes to it")
    expires_in: int


class Chunk(BaseModel):
    """One item of the chunk plan that the Distributed Map's ItemReader reads: a line-aligned byte range of a
    batch's input. The batch function reads the rest of what it needs (input, format, output, CSV header and
    columns, whether it was cancelled) from the batch's record."""

    batch_id: str
    index: int
    start: int
    end: int = Field(description="exclusive")
    first_line: int = Field(description="1-based line number of the chunk's first row in the file")
    rows: int


class BatchContext(BaseModel):
    """What every chunk needs to know of its batch."""

    batch_id: str
    input: str
    format: Format
    output: str
    columns: dict[str, list[str]] | None = None
    header: list[str] | None = None

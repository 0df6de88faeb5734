"""Bodies of the jobs routes and of the messages between the tier's functions."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inferstack.protocol.schemas import InferRequestBody

#: SQS accepts 1 MiB messages; inputs above this travel through S3 (claim check).
INLINE_INPUT_BYTES = 200_000
MAX_METADATA_BYTES = 4096


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, description="https URL that receives a signed POST when the job ends")


#: A cascade's jobs travel as those of the model named `cascade/<name>` (no model name has a `/`).
CASCADE_PREFIX = "cascade/"


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(default="", description="The model that runs the job (or give `cascade`)")
    cascade: str | None = Field(default=None, description="A cascade that runs the job instead of one model: the "
                                "result has its outputs, the stage that answered each row and the count escalated")
    inputs: dict[str, Any] | list[Any] = Field(
        description="As for predict: each input name mapped to a nested list whose leading axis is the batch, or "
        "for a model with a handler its own request body (GET /v1/models/{name} has its request_schema)")
    webhook: WebhookSpec | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Returned with the job; at most 4 KB of JSON")
    protocol: Literal["v1", "v2"] = Field(default="v1", description="v2: `inputs` is an Open Inference Protocol "
                                          "infer request (JSON tensors), and the job's result its infer response")

    @model_validator(mode="before")
    @classmethod
    def _model_or_cascade(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        cascade, model = data.get("cascade"), data.get("model")
        if cascade is not None and model is not None:
            raise ValueError("give either model or cascade, not both")
        if cascade is None and model is None:
            raise ValueError("model (or cascade) is required")
        if isinstance(cascade, str):
            return {**data, "model": CASCADE_PREFIX + cascade}
        return data

    @model_validator(mode="after")
    def _v2_inputs(self) -> JobRequest:
        if self.protocol == "v2":
            request = InferRequestBody.model_validate(self.inputs)
            binary = any((i.parameters or {}).get("binary_data_size") is not None for i in request.inputs) or \
                (request.parameters or {}).get("binary_data_output") or \
                any((o.parameters or {}).get("binary_data") for o in request.outputs or [])
            if binary:
                raise ValueError("a v2 job carries JSON tensors both ways (data, no binary_data_size, binary_data "
                                 "or binary_data_output): the binary data extension is for POST "
                                 "/v2/models/{name}/infer")
        return self

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class JobLinks(BaseModel):
    self: str


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    links: JobLinks


class WebhookAttempt(BaseModel):
    at: str
    attempt: int | None = None
    status_code: int | None = None
    error: str | None = None
    next_in_s: int | None = Field(default=None, description="Seconds until the next attempt, when one follows")


class WebhookState(BaseModel):
    url: str | None = None
    status: str = Field(description="none, pending, delivered, failed or gone (the receiver answered 410)")
    attempts: list[WebhookAttempt] = Field(default_factory=list)


class JobView(BaseModel):
    job_id: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed"]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    result: Any = None
    result_url: str | None = Field(default=None, description="Presigned URL when the result is too large to inline")
    error: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    model_version: str | None = Field(default=None, description="The model version that ran the job")
    webhook: WebhookState


class JobMessage(BaseModel):
    """What a job queue carries: the job and its inputs, inline or by reference to S3, and what the worker
    needs for the job's webhook (so that it reads nothing back from the table)."""

    job_id: str
    model: str
    inputs: dict[str, Any] | list[Any] | None = None
    inputs_ref: str | None = None
    protocol: Literal["v1", "v2"] = "v1"
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    #: When the job first waited for its model to scale out from zero (epoch seconds; `jobs.deferral`).
    waiting_since: float | None = None


class WebhookMessage(BaseModel):
    """What the webhook queue carries: everything one delivery attempt needs."""

    job_id: str
    url: str
    event: dict[str, Any]
    attempt: int = 1
    #: Whose webhook: a job's, or a batch's (`job_id` is then the batch's ID).
    record: Literal["job", "batch"] = "job"

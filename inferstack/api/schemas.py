"""Request and response bodies of the HTTP contract (documented in the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from inferstack.catalog import ModelInfo

NestedList = list[Any]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ModelList(BaseModel):
    models: list[ModelInfo]


class PredictRequest(BaseModel):
    inputs: dict[str, NestedList] | NestedList = Field(
        description="Each input name mapped to a nested list whose leading axis is the batch; "
        "a model with one input also takes the bare nested list. A model with a handler takes its own body "
        "instead (its request_schema, and its own operation in this document).",
        examples=[{"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}],
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    outputs: dict[str, NestedList] = Field(description="Each output name mapped to one row per input row.")


class InputProblemModel(BaseModel):
    input: str
    detail: str
    expected: str | None = None
    given: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    #: The request's X-Ray trace (`urn:x-amzn-trace-id:1-...`): where to look for what happened.
    instance: str | None = None
    errors: list[InputProblemModel] | None = None


#: The JSON schema (draft 4, as API Gateway's request validator takes it) every predict body must match
#: before it reaches a function. The local gateway validates against the same schema.
PREDICT_BODY_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "PredictRequest",
    "type": "object",
    "required": ["inputs"],
    "properties": {"inputs": {"type": ["object", "array"]}},
}

#: The body every job submission must match before it reaches the API function.
BATCH_BODY_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "BatchRequest",
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": {"type": "string"},
        "format": {"type": "string"},
        "output": {"type": "string"},
        "rows_per_chunk": {"type": "integer"},
        "columns": {"type": "object"},
        "webhook": {"type": "object"},
        "metadata": {"type": "object"},
    },
}
JOB_BODY_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "JobRequest",
    "type": "object",
    # `model` or `cascade`, one of them: checked by the API function, whose 422 names them (a schema's anyOf
    # would give API Gateway's generic "failed to match" message)
    "required": ["inputs"],
    "properties": {
        "model": {"type": "string"},
        "cascade": {"type": "string"},
        "inputs": {"type": ["object", "array"]},
        "protocol": {"type": "string"},
        "webhook": {"type": "object"},
        "metadata": {"type": "object"},
    },
}

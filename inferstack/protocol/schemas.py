"""The protocol's JSON bodies as pydantic models: the OpenAPI document's `/v2` schemas, and the check of a v2
infer request submitted as a job's `inputs` (`POST /v1/jobs` with `"protocol": "v2"`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
                   "FP32", "FP64", "BYTES"]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="Dimensions; the leading one is the batch")
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(default=None, description="`binary_data_size`: the tensor's bytes "
                                              "in the binary data extension (then no `data`)")
    data: list[Any] | None = Field(default=None, description="The elements, row-major, flat or nested")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] | None = Field(default=None, description="`binary_data`: this output in binary")


class InferRequestBody(BaseModel):
    """An Open Inference Protocol infer request (or its JSON header, with the binary data extension)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "id": "42", "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4],
                                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}]})
    id: str | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="`binary_data_output`: every output in "
                                              "binary unless it says otherwise; others are returned as given")
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for a free dimension")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class Error(BaseModel):
    """The protocol's error shape."""

    error: str

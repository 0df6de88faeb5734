"""Server and model metadata in the protocol's terms.

A plain ONNX model's tensors are its graph's. A model with a handler speaks through its handler: its `Request`
and `Response` fields become its inputs and outputs (minilm: `text` BYTES in, `embeddings` FP32 and `tokens` INT64
out), read from their JSON schemas: an array's nesting is the rank, its items' type the datatype, a length fixed
by `minItems == maxItems` a fixed dimension, any other `-1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inferstack import __version__
from inferstack.inference.spec import TensorSpec
from inferstack.protocol.datatypes import v2_datatype, v2_shape

SERVER_NAME = "inferstack"
#: Protocol extensions this server speaks.
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "onnxruntime_onnx"

_JSON_TYPES = {"string": "BYTES", "number": "FP32", "integer": "INT64", "boolean": "BOOL"}


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: list[int]
    #: A scalar field of a handler's schema: sent as a one-element tensor, unwrapped for the handler.
    scalar: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


def from_specs(specs: Sequence[TensorSpec]) -> list[TensorMeta]:
    return [TensorMeta(s.name, v2_datatype(s.dtype), v2_shape(s.shape)) for s in specs]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.removeprefix("#/$defs/"), {}))
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    return options[0] if len(options) == 1 and isinstance(options[0], dict) else node


def _field(name: str, node: dict[str, Any], defs: dict[str, Any]) -> TensorMeta | None:
    shape: list[int] = []
    node = _resolve(node, defs)
    while node.get("type") == "array":
        low, high = node.get("minItems"), node.get("maxItems")
        shape.append(low if isinstance(low, int) and low == high else -1)
        node = _resolve(node.get("items") or {}, defs)
    datatype = _JSON_TYPES.get(str(node.get("type")))
    if datatype is None:
        return None
    return TensorMeta(name, datatype, shape or [1], scalar=not shape)


def from_schema(schema: dict[str, Any] | None) -> list[TensorMeta] | None:
    """A handler's `Request` or `Response` JSON schema as tensors; None when it has no schema, or a field that
    is no tensor (an object)."""
    if not schema or schema.get("type") != "object":
        return None
    defs = schema.get("$defs", {})
    out = []
    for name, node in (schema.get("properties") or {}).items():
        meta = _field(name, node, defs)
        if meta is None:
            return None
        out.append(meta)
    return out


def model_tensors(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], request_schema: dict[str, Any] | None,
                  response_schema: dict[str, Any] | None) -> tuple[list[TensorMeta], list[TensorMeta]]:
    """A model's inputs and outputs as a client of the protocol sees them."""
    ins = from_schema(request_schema) if request_schema is not None else None
    outs = from_schema(response_schema) if request_schema is not None else None
    return (ins if ins is not None else from_specs(inputs)), (outs if outs is not None else from_specs(outputs))


def model_metadata(name: str, version: str, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta]
                   ) -> dict[str, Any]:
    return {"name": name, "versions": [version], "platform": PLATFORM,
            "inputs": [m.as_dict() for m in inputs], "outputs": [m.as_dict() for m in outputs]}


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

"""The protocol's tensor datatypes and shapes, against the model signatures' numpy dtype names."""

from __future__ import annotations

from collections.abc import Sequence

#: Open Inference Protocol datatype -> numpy dtype name (`TensorSpec.dtype`); BYTES are strings.
V2_TO_DTYPE: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "str",
}
DTYPE_TO_V2: dict[str, str] = {v: k for k, v in V2_TO_DTYPE.items()}

#: Bytes per element in the binary data extension (little-endian); BYTES elements are length-prefixed.
ITEMSIZE: dict[str, int] = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2,
                            "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}

INTEGER_TYPES = frozenset(k for k in V2_TO_DTYPE if k.startswith(("INT", "UINT")))
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


def v2_datatype(dtype: str) -> str:
    """The protocol's name for a numpy dtype name (`float32` -> `FP32`)."""
    return DTYPE_TO_V2.get(dtype, dtype.upper())


def v2_shape(shape: Sequence[int | str | None]) -> list[int]:
    """A signature's shape in the protocol's terms: fixed dims as they are, `-1` for a free (symbolic) one."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count

"""Cache keys: the model, its version and a canonical hash of the request's validated inputs.

Equivalent requests hash alike: JSON key order, whitespace, `1` vs `1.0`, and a single-input model's bare
array vs `{"<input>": array}` make no difference; a light model's key is taken from the validated tensors
(dtype, shape and bytes), so anything that validates to the same tensors is the same request. A new version is
another key: it never serves an old version's answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Integers up to this magnitude are exact as floats: hashed as floats, so that `1` and `1.0` agree.
_EXACT_INT = 2**53


@dataclass(frozen=True)
class CacheKey:
    model: str
    version: str
    digest: str

    @property
    def id(self) -> str:
        """The key in the stores: unique per model, version and inputs."""
        return hashlib.sha256(f"{self.model}\0{self.version}\0{self.digest}".encode()).hexdigest()

    @property
    def etag(self) -> str:
        """A strong ETag: the same model version answers the same inputs with the same representation."""
        return f'"{self.id[:32]}"'


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) <= _EXACT_INT else value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_normalise(v) for v in value]
    return value


def canonical_json(inputs: Any, input_names: Sequence[str] = ()) -> bytes:
    """One byte string per meaning of a request's `inputs`. `input_names`: the model's inputs; a model with one
    takes the bare array too, so it is named here."""
    if len(input_names) == 1 and not isinstance(inputs, Mapping):
        inputs = {input_names[0]: inputs}
    return json.dumps(_normalise(inputs), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True).encode()


def digest_json(inputs: Any, input_names: Sequence[str] = ()) -> str:
    return hashlib.sha256(canonical_json(inputs, input_names)).hexdigest()


def digest_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """The hash of validated tensors: name, dtype, shape and content of each, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = arrays[name]
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        if array.dtype.kind == "O":  # strings: their JSON text
            digest.update(json.dumps(array.tolist(), ensure_ascii=False).encode())
        else:
            digest.update(array.tobytes(order="C"))
    return digest.hexdigest()

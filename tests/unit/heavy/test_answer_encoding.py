"""The container encodes answers with orjson: the same JSON values as the standard library's encoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from inferstack.api import predict


@pytest.mark.parametrize("outputs", [
    {"embeddings": (np.random.default_rng(0).standard_normal((2, 384)).astype(np.float32) / 100).tolist(),
     "tokens": [8, 11]},
    {"y": [[1.5, math.nan], [math.inf, -math.inf]], "label": ["a", "b"], "tiny": [1e-7, 1e20, -0.0]},
])
def test_orjson_and_the_json_module_give_the_same_values(outputs: dict[str, object],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the container's encoder (orjson is installed in the container and here)
    assert predict.orjson is not None
    fast = predict.predict_body("m", "v", outputs)
    # WHEN the same answer is encoded without it (as in a Lambda layer)
    monkeypatch.setattr(predict, "orjson", None)
    slow = predict.predict_body("m", "v", outputs)
    # THEN both parse to the same document, NaN and infinities as null in both
    assert json.loads(fast) == json.loads(slow)


def test_what_orjson_cannot_encode_falls_back_to_the_json_module() -> None:
    # GIVEN an integer too large for orjson (64 bits) THEN the standard encoder still answers
    assert json.loads(predict.predict_body("m", "v", {"n": [2**70]}))["outputs"]["n"] == [2**70]

"""Cache keys: one per meaning of a request, another per model version."""

from __future__ import annotations

import json

import numpy as np

from inferstack.cache.key import CacheKey, canonical_json, digest_arrays, digest_json


def test_equivalent_json_bodies_hash_alike() -> None:
    # GIVEN the same inputs written differently: key order, whitespace, 1 vs 1.0, bare array vs named input
    a = json.loads('{"features": [[5, 3.5, 1.4, 0.2]], "extra": {"b": 1, "a": 2}}')
    b = json.loads('{ "extra": {"a": 2.0, "b": 1.0},\n  "features": [[5.0, 3.50, 1.4, 0.2]] }')
    # THEN they hash alike
    assert digest_json(a) == digest_json(b)
    assert digest_json([[1, 2]], ["x"]) == digest_json({"x": [[1.0, 2.0]]}, ["x"])


def test_different_inputs_hash_apart() -> None:
    assert digest_json({"x": [[1, 2]]}) != digest_json({"x": [[2, 1]]})
    assert digest_json({"x": [[1, 2]]}) != digest_json({"y": [[1, 2]]})
    assert digest_json({"x": ["1"]}) != digest_json({"x": [1]})
    assert digest_json({"x": [True]}) != digest_json({"x": [1]})
    # integers beyond float precision stay apart
    assert digest_json({"x": [2**60]}) != digest_json({"x": [2**60 + 1]})
    # a bare array is named only for a model with exactly one input
    assert canonical_json([[1]], ["a", "b"]) != canonical_json({"a": [[1]]}, ["a", "b"])


def test_validated_tensors_hash_by_dtype_shape_and_content() -> None:
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    assert digest_arrays({"x": x}) == digest_arrays({"x": np.asarray([[1, 2]], dtype=np.float32)})
    assert digest_arrays({"x": x}) != digest_arrays({"x": x.astype(np.float64)})
    assert digest_arrays({"x": x}) != digest_arrays({"x": x.reshape(2, 1)})
    assert digest_arrays({"x": x}) != digest_arrays({"y": x})
    texts = np.array(["a", "b"], dtype=object)
    assert digest_arrays({"t": texts}) != digest_arrays({"t": np.array(["b", "a"], dtype=object)})


def test_a_new_version_is_a_new_key_and_etag() -> None:
    digest = digest_json({"x": [[1, 2]]})
    v1, v2 = CacheKey("iris", "aaa111", digest), CacheKey("iris", "bbb222", digest)
    assert v1.id != v2.id and v1.etag != v2.etag
    assert CacheKey("iris", "aaa111", digest).etag == v1.etag
    assert CacheKey("other", "aaa111", digest).id != v1.id
    assert v1.etag.startswith('"') and v1.etag.endswith('"')

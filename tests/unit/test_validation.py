from __future__ import annotations

import math

import numpy as np
import pytest

from inferstack.catalog import TensorSpec
from inferstack.inference.exceptions import InputValidationError
from inferstack.inference.validation import to_jsonable, validate_inputs

FEATURES = TensorSpec(name="features", dtype="float32", shape=["N", 4])
TOKENS = TensorSpec(name="tokens", dtype="int64", shape=["N", "T"])
MASK = TensorSpec(name="mask", dtype="int64", shape=["N", "T"])
TEXT = TensorSpec(name="text", dtype="str", shape=["N"])
FLAGS = TensorSpec(name="flags", dtype="bool", shape=[None, 2])


def problems_of(raw: object, specs: list[TensorSpec], **kw: bool) -> list[dict[str, str]]:
    with pytest.raises(InputValidationError) as info:
        validate_inputs(raw, specs, **kw)
    return [p.as_dict() for p in info.value.problems]


def test_valid_batch_is_cast_to_the_model_dtype() -> None:
    arrays = validate_inputs({"features": [[1, 2, 3, 4], [5.5, 6, 7, 8]]}, [FEATURES])
    assert arrays["features"].dtype == np.float32
    assert arrays["features"].shape == (2, 4)


def test_bare_array_for_single_input_model() -> None:
    arrays = validate_inputs([[1, 2, 3, 4]], [FEATURES])
    assert arrays["features"].shape == (1, 4)


def test_bare_array_rejected_for_multi_input_model() -> None:
    (p,) = problems_of([[1, 2]], [TOKENS, MASK])
    assert p["input"] == "inputs" and "tokens, mask" in p["detail"]


def test_missing_and_unknown_inputs_are_both_reported() -> None:
    found = problems_of({"feature": [[1, 2, 3, 4]]}, [FEATURES])
    assert {p["input"] for p in found} == {"inputs.feature", "inputs.features"}
    missing = next(p for p in found if p["input"] == "inputs.features")
    assert missing["detail"] == "missing; expected float32, shape [N, 4]"


def test_wrong_fixed_dimension_names_expected_and_given() -> None:
    (p,) = problems_of({"features": [[1, 2, 3]]}, [FEATURES])
    assert p == {"input": "inputs.features", "expected": "[N, 4]", "given": "[1, 3]",
                 "detail": "dimension 1 must be 4, got 3 (expected shape [N, 4], given [1, 3])"}


def test_wrong_rank_hints_at_the_batch_axis() -> None:
    (p,) = problems_of({"features": [1, 2, 3, 4]}, [FEATURES])
    assert p["expected"] == "[N, 4]" and p["given"] == "[4]"
    assert "wrap a single row in a list" in p["detail"]


def test_ragged_nested_list_points_at_the_row() -> None:
    (p,) = problems_of({"features": [[1, 2, 3, 4], [1, 2, 3]]}, [FEATURES])
    assert p["input"] == "inputs.features[1]"
    assert "expected a list of 4 items" in p["detail"] and "got a list of 3 items" in p["detail"]


def test_deeply_ragged_list() -> None:
    spec = TensorSpec(name="x", dtype="float32", shape=["N", 2, 2])
    (p,) = problems_of({"x": [[[1, 2], [3, 4]], [[1, 2], [3]]]}, [spec])
    assert p["input"] == "inputs.x[1][1]"


def test_strings_cannot_be_numbers() -> None:
    (p,) = problems_of({"features": [["a", "b", "c", "d"]]}, [FEATURES])
    assert "expected float32 numbers, got strings" in p["detail"]


def test_booleans_are_not_numbers() -> None:
    (p,) = problems_of({"features": [[True, False, True, False]]}, [FEATURES])
    assert "got booleans" in p["detail"]


def test_nulls_are_rejected() -> None:
    (p,) = problems_of({"features": [[1, None, 3, 4]]}, [FEATURES])
    assert "null or mixed types" in p["detail"]


def test_non_integral_floats_cannot_become_integers() -> None:
    (p,) = problems_of({"tokens": [[1.5, 2]], "mask": [[1, 1]]}, [TOKENS, MASK])
    assert p["input"] == "inputs.tokens" and "cannot be cast safely" in p["detail"]


def test_integral_floats_are_accepted_as_integers() -> None:
    arrays = validate_inputs({"tokens": [[1.0, 2.0]], "mask": [[1, 1]]}, [TOKENS, MASK])
    assert arrays["tokens"].dtype == np.int64 and arrays["tokens"].tolist() == [[1, 2]]


def test_integer_out_of_range() -> None:
    spec = TensorSpec(name="b", dtype="uint8", shape=["N"])
    (p,) = problems_of({"b": [1, 300]}, [spec])
    assert "out of range for uint8 (0..255)" in p["detail"]


def test_symbolic_dims_must_agree_across_inputs() -> None:
    (p,) = problems_of({"tokens": [[1, 2, 3]], "mask": [[1, 1]]}, [TOKENS, MASK])
    assert p["input"] == "inputs.mask" and "dimension 1 (T) is 2 here but 3 in inputs.tokens" in p["detail"]


def test_nan_and_infinity_are_rejected_by_default() -> None:
    (p,) = problems_of({"features": [[1, 2, 3, 4], [1, math.nan, 3, 4]]}, [FEATURES])
    assert "NaN or infinite value at inputs.features[1, 1]" in p["detail"]


def test_overflowing_float32_is_rejected_as_infinite() -> None:
    (p,) = problems_of({"features": [[1e39, 2, 3, 4]]}, [FEATURES])
    assert "too large for float32" in p["detail"]


def test_nan_allowed_when_the_model_says_so() -> None:
    arrays = validate_inputs({"features": [[math.nan, 2, 3, math.inf]]}, [FEATURES], allow_non_finite=True)
    assert np.isnan(arrays["features"][0, 0])


def test_empty_batch() -> None:
    spec = TensorSpec(name="v", dtype="float32", shape=["N"])
    (p,) = problems_of({"v": []}, [spec])
    assert "empty batch" in p["detail"]


def test_string_and_bool_inputs() -> None:
    arrays = validate_inputs({"text": ["a", "b"]}, [TEXT])
    assert arrays["text"].dtype == object
    assert validate_inputs({"flags": [[True, False]]}, [FLAGS])["flags"].dtype == np.bool_
    (p,) = problems_of({"text": [1, 2]}, [TEXT])
    assert "expected strings" in p["detail"]


def test_inputs_must_be_an_object_or_array() -> None:
    (p,) = problems_of("features", [FEATURES])
    assert p["input"] == "inputs" and "got str" in p["detail"]


def test_to_jsonable_turns_non_finite_into_null() -> None:
    assert to_jsonable(np.array([1.5, np.nan, np.inf], dtype=np.float32)) == [1.5, None, None]
    assert to_jsonable(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]


def test_predict_body_turns_non_finite_outputs_into_null() -> None:
    import json

    from inferstack.api.predict import predict_body

    body = json.loads(predict_body("m", "v", {"y": [[1.5, math.nan], [math.inf, -math.inf]], "n": [1, 2]}))
    assert body == {"model": "m", "version": "v", "outputs": {"y": [[1.5, None], [None, None]], "n": [1, 2]}}

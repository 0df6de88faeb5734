"""Ragged batching: requests of different lengths padded to stack, each answered at its own length."""

from __future__ import annotations

import numpy as np
import pytest

from inferstack.inference.ragged import Padding, PaddingError
from inferstack.inference.spec import TensorSpec
from inferstack.inference.stacking import group, run_stacked

INPUTS = [TensorSpec("ids", "int64", ["batch", "sequence"]), TensorSpec("mask", "int64", ["batch", "sequence"]),
          TensorSpec("scale", "float32", ["batch", 1])]
OUTPUTS = [TensorSpec("hidden", "float32", ["batch", "sequence", 2]), TensorSpec("pooled", "float32", ["batch", 2])]
PADDING = Padding.from_signature({"ids": 0, "mask": 0}, INPUTS, OUTPUTS)


def request(*lengths: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Rows of token ids 1..n, padded within the request to its longest (as a tokenizer does)."""
    longest = max(lengths)
    ids = np.array([[t + 1 if t < n else 0 for t in range(longest)] for n in lengths], dtype=np.int64)
    return {"ids": ids, "mask": (ids > 0).astype(np.int64), "scale": np.full((len(lengths), 1), scale, np.float32)}


def model(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A masked model: every position's output depends on its own id, the pooled one on the real positions only.
    Padding under the mask leaves both unchanged for the real positions."""
    ids, mask, scale = arrays["ids"], arrays["mask"], arrays["scale"]
    hidden = np.stack([ids * scale, ids * mask * 2.0], axis=-1).astype(np.float32)
    pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return {"hidden": hidden, "pooled": pooled.astype(np.float32)}


def test_requests_of_different_lengths_run_as_one_call_and_get_their_own_answers() -> None:
    requests = [request(3), request(5, 2), request(1, scale=2.0), request(4)]
    calls = []

    def run(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(arrays["ids"].shape)
        return model(arrays)

    assert group(requests) == [[0], [1], [2], [3]]  # without padding nothing stacks
    assert group(requests, PADDING) == [[0, 1, 2, 3]]
    results = run_stacked(run, requests, PADDING)
    assert calls == [(5, 5)]  # five rows, padded to the longest, 5
    for req, result in zip(requests, results, strict=True):
        assert not isinstance(result, Exception)
        expected = model(req)
        assert result["hidden"].shape == expected["hidden"].shape  # cut back to the request's own length
        np.testing.assert_array_equal(result["hidden"], expected["hidden"])
        np.testing.assert_array_equal(result["pooled"], expected["pooled"])


def test_padding_uses_the_declared_values() -> None:
    padding = Padding.from_signature({"ids": 7, "mask": 0}, INPUTS, OUTPUTS)
    stacked = padding.stack([request(1), request(3)])
    assert stacked["ids"].tolist() == [[1, 7, 7], [1, 2, 3]]
    assert stacked["mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert stacked["scale"].shape == (2, 1)  # not padded: it has no named axis


def test_requests_whose_padded_inputs_disagree_never_stack() -> None:
    odd = request(3)
    odd["mask"] = odd["mask"][:, :2]  # ids of 3, mask of 2: no length to pad to
    assert PADDING.extent(odd) is None
    assert group([request(2), odd, request(4)], PADDING) == [[0, 2], [1]]


def test_other_dims_must_still_match() -> None:
    wide = request(2)
    wide["scale"] = np.ones((1, 2), np.float32)  # scale[batch, 1] sent as [1, 2]
    assert group([request(2), wide, request(3)], PADDING) == [[0, 2], [1]]


def test_size_is_the_elements_per_row_along_padded_axes() -> None:
    assert PADDING.size(request(5, 2)) == 5
    assert Padding.from_signature({"ids": 0}, INPUTS, OUTPUTS).output_axes == {"hidden": {1: "sequence"}}


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"tokens": 0}, "pad.tokens", "no input 'tokens'"),
    ({"scale": 0}, "pad.scale", "no named variable axis"),
])
def test_a_pad_that_names_no_variable_input_is_refused_naming_it(values: dict[str, int], field: str,
                                                                   words: str) -> None:
    with pytest.raises(PaddingError) as caught:
        Padding.from_signature(values, INPUTS, OUTPUTS)
    assert caught.value.field == field and words in caught.value.detail


@pytest.mark.parametrize(("values", "inputs", "words"), [
    ({"ids": 0.5, "mask": 0}, INPUTS, "not a value of input 'ids'"),
    ({"ids": -1, "mask": 0}, [TensorSpec("ids", "uint8", ["batch", "sequence"]), *INPUTS[1:]], "uint8"),
    ({"text": 0}, [TensorSpec("text", "str", ["batch", "sequence"])], "str"),
])
def test_a_pad_value_the_input_cannot_hold_is_refused(values: dict[str, float], inputs: list[TensorSpec],
                                                      words: str) -> None:
    with pytest.raises(PaddingError, match=words):
        Padding.from_signature(values, inputs, [])


def test_an_output_whose_variable_axis_is_named_otherwise_is_refused() -> None:
    # an exporter's own name for the sequence axis: the padded rows could never be cut back
    outputs = [TensorSpec("hidden", "float32", ["batch", "Addh_dim_1", 2])]
    with pytest.raises(PaddingError) as caught:
        Padding.from_signature({"ids": 0, "mask": 0}, INPUTS, outputs)
    assert caught.value.field == "pad" and "'hidden'" in caught.value.detail and "Addh_dim_1" in caught.value.detail


def test_an_output_that_does_not_follow_the_padded_length_fails_the_stack_and_each_runs_alone() -> None:
    calls = []

    def run(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(arrays["ids"].shape)
        out = model(arrays)
        return {**out, "hidden": out["hidden"][:, :3]}  # a model that answers 3 positions whatever it got

    results = run_stacked(run, [request(3), request(5)], PADDING)
    assert calls == [(2, 5), (1, 3), (1, 5)]  # the stacked run was refused, then each alone
    assert [r["hidden"].shape for r in results if not isinstance(r, Exception)] == [(1, 3, 2), (1, 3, 2)]


def test_the_job_worker_groups_long_and_short_requests_apart() -> None:
    # one 40-token request among short ones: padding them all to 40 would be 8x their work
    requests = [request(5), request(40), request(4), request(5), request(6)]
    assert group(requests, PADDING) == [[0, 2, 3, 4], [1]]

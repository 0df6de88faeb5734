"""The accuracy gate's arithmetic: cosine drift for floating-point outputs, agreement for labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inferstack_infra.optimize import OptimizationError, compare
from inferstack_infra.optimize.gate import reference_inputs


def test_float_outputs_drift_by_one_minus_their_mean_row_cosine() -> None:
    # GIVEN two requests' embeddings, one row exact and one rotated by 60 degrees
    ref = [{"embeddings": [[1.0, 0.0]]}, {"embeddings": [[0.0, 1.0]]}]
    got = [{"embeddings": [[1.0, 0.0]]}, {"embeddings": [[np.sqrt(3) / 2, 0.5]]}]
    (drift,) = compare(ref, got)
    # THEN the mean cosine is (1 + 0.5) / 2, the worst row 0.5
    assert drift.kind == "cosine" and drift.rows == 2
    assert drift.mean == pytest.approx(0.75) and drift.worst == pytest.approx(0.5)
    assert drift.drift == pytest.approx(0.25)


def test_labels_drift_by_the_share_of_rows_that_disagree() -> None:
    ref = [{"label": [0, 1, 2, 2]}, {"label": [1]}]
    got = [{"label": [0, 1, 1, 2]}, {"label": [1]}]
    (drift,) = compare(ref, got)
    assert drift.kind == "agreement" and drift.mean == pytest.approx(0.8) and drift.drift == pytest.approx(0.2)


def test_zero_rows_that_match_do_not_count_as_drift_and_shapes_must_match() -> None:
    (drift,) = compare([{"p": [[0.0, 0.0]]}], [{"p": [[0.0, 0.0]]}])
    assert drift.mean == 1.0
    with pytest.raises(OptimizationError, match="shape"):
        compare([{"p": [[1.0, 2.0]]}], [{"p": [[1.0, 2.0, 3.0]]}])


def test_reference_inputs_are_a_json_list_plus_the_handler_example(tmp_path: Path) -> None:
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps([{"text": ["a"]}, {"text": ["b"]}]))
    assert reference_inputs(ref, {"text": ["example"]}) == [{"text": ["a"]}, {"text": ["b"]}, {"text": ["example"]}]
    ref.write_text(json.dumps({"text": ["a"]}))
    with pytest.raises(OptimizationError, match="JSON list"):
        reference_inputs(ref, None)
    with pytest.raises(OptimizationError, match=r"optimize\.reference"):
        reference_inputs(None, None)

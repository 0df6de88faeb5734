"""Row-wise escalation with stand-in stages: only the uncertain rows go on; degraded answers keep the earlier
stage's rows."""

from __future__ import annotations

import numpy as np
import pytest

from inferstack.api import problems
from inferstack.cascade.budget import Budget
from inferstack.cascade.config import Accept
from inferstack.cascade.exceptions import BudgetExceededError, CircuitOpenError
from inferstack.cascade.runner import Arrays, CascadeRunner, confidence
from inferstack.heavy.exceptions import EndpointError


class FakeStage:
    """Answers class `label` with probability `p[row]` (taken from the input's first column)."""

    def __init__(self, name: str, label: int, error: Exception | None = None) -> None:
        self.name, self.version, self.label, self.error = name, "v1", label, error
        self.seen: list[list[float]] = []

    def run(self, arrays: Arrays, budget: Budget | None) -> Arrays:
        if self.error:
            raise self.error
        x = arrays["x"]
        self.seen.append(x[:, 0].tolist())
        p = x[:, 0:1]
        return {"label": np.full(len(x), self.label, dtype=np.int64),
                "probabilities": np.hstack([p, 1 - p]).astype(np.float32)}


ROWS = {"x": np.array([[0.95], [0.5], [0.99], [0.7]], dtype=np.float32)}


def test_confidence_is_the_top_score_of_a_row_or_the_score_itself() -> None:
    assert confidence(np.array([[0.2, 0.8], [0.6, 0.4]])).tolist() == [0.8, 0.6]
    assert confidence(np.array([0.3, 0.9])).tolist() == [0.3, 0.9]


def test_only_rows_below_the_threshold_escalate() -> None:
    light, heavy = FakeStage("light", 1), FakeStage("heavy", 2)
    runner = CascadeRunner("c", [light, heavy], Accept(output="probabilities", min_confidence=0.9),
                           ["label", "probabilities"])
    result = runner.run(ROWS)
    # rows 1 (0.5 -> top 0.5) and 3 (0.7 -> top 0.7) are below 0.9
    assert heavy.seen == [[0.5, pytest.approx(0.7)]]
    assert result.stage == ["light", "heavy", "light", "heavy"] and result.escalated == 2
    assert result.outputs["label"].tolist() == [1, 2, 1, 2] and result.degraded is None


def test_a_three_stage_cascade_passes_on_only_what_each_stage_was_unsure_of() -> None:
    a, b, c = FakeStage("a", 1), FakeStage("b", 2), FakeStage("c", 3)
    runner = CascadeRunner("c3", [a, b, c], Accept(output="probabilities", min_confidence=0.9),
                           ["label"])
    result = runner.run({"x": np.array([[0.95], [0.5], [0.6]], dtype=np.float32)})
    # b sees rows 1 and 2 and is as unsure (same fake): both go on to c
    assert len(b.seen[0]) == 2 and len(c.seen[0]) == 2 and result.stage == ["a", "c", "c"]


def test_nothing_escalates_when_every_row_is_confident() -> None:
    heavy = FakeStage("heavy", 2)
    runner = CascadeRunner("c", [FakeStage("light", 1), heavy], Accept(min_confidence=0.5), ["label"])
    assert runner.run(ROWS).escalated == 0 and heavy.seen == []


@pytest.mark.parametrize(("error", "reason"), [
    (BudgetExceededError(50), "budget"),
    (CircuitOpenError("heavy", 5), "circuit-open"),
    (EndpointError(problems.UNAVAILABLE, "down", retry_after=5), "unavailable"),
])
def test_a_later_stage_that_cannot_answer_leaves_the_earlier_answer_marked_degraded(error: Exception,
                                                                                    reason: str) -> None:
    runner = CascadeRunner("c", [FakeStage("light", 1), FakeStage("heavy", 2, error)],
                           Accept(min_confidence=0.9), ["label"])
    result = runner.run(ROWS)
    assert result.degraded == reason and result.stage == ["light"] * 4 and result.outputs["label"].tolist() == [1] * 4
    assert result.escalated == 2


def test_a_client_error_from_a_later_stage_is_not_degraded_away() -> None:
    runner = CascadeRunner("c", [FakeStage("light", 1), FakeStage("heavy", 2, EndpointError(
        problems.INVALID_INPUT, "bad"))], Accept(min_confidence=0.9), ["label"])
    with pytest.raises(EndpointError):
        runner.run(ROWS)


def test_a_custom_rule_decides_instead_of_the_threshold() -> None:
    heavy = FakeStage("heavy", 2)
    runner = CascadeRunner("c", [FakeStage("light", 1), heavy], Accept(rule="r.py"), ["label"],  # type: ignore[arg-type]
                           rule=lambda outputs: outputs["probabilities"][:, 0] > 0.9)
    result = runner.run(ROWS)
    assert result.stage == ["light", "heavy", "light", "heavy"]
    bad = CascadeRunner("c", [FakeStage("light", 1), heavy], Accept(rule="r.py"), ["label"],  # type: ignore[arg-type]
                        rule=lambda outputs: [True])
    with pytest.raises(RuntimeError, match="1 verdicts for 4 rows"):
        bad.run(ROWS)

"""The weighted pick between A/B variants."""

from __future__ import annotations

from typing import Any

from inferstack.rollout.variants import Arm, Variants


def arms(*weights: int) -> list[tuple[Arm, int]]:
    fake: Any = object()
    return [(Arm(f"v{i}", fake), w) for i, w in enumerate(weights)]


def test_pick_follows_the_cumulative_weights() -> None:
    draws = iter([0.0, 0.699, 0.70, 0.999])
    variants = Variants(arms(70, 30), rand=lambda: next(draws))
    assert [variants.pick().name for _ in range(4)] == ["v0", "v0", "v1", "v1"]


def test_one_arm_needs_no_draw() -> None:
    variants = Variants(arms(100), rand=lambda: 1 / 0)  # never called
    assert variants.pick_index() == 0

"""Model instances of the heavy container: how many, and batches running side by side on them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np
import pytest

from inferstack import env
from inferstack.heavy.batching import DynamicBatcher
from inferstack.heavy.instances import plan

Arrays = dict[str, np.ndarray]


@pytest.mark.parametrize(("setting", "cuda", "vcpus", "expected"), [
    ("auto", False, 2, (2, 1)),
    ("auto", False, 1, (1, 1)),
    ("auto", False, 16, (4, 4)),
    (3, False, 8, (3, 2)),
    ("auto", True, 8, (1, 8)),  # a GPU runs one batch at a time
    (4, True, 8, (1, 8)),
])
def test_the_plan(setting: int | str, cuda: bool, vcpus: int, expected: tuple[int, int],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.HEAVY_INSTANCES, raising=False)
    assert plan(setting, cuda=cuda, vcpus=vcpus) == expected


def test_the_environment_overrides_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.HEAVY_INSTANCES, "1")
    assert plan("auto", cuda=False, vcpus=8) == (1, 8)
    monkeypatch.setenv(env.HEAVY_INSTANCES, "0")
    with pytest.raises(ValueError, match="INFERSTACK_INSTANCES"):
        plan("auto", cuda=False, vcpus=8)


def test_while_one_instance_runs_a_batch_the_next_one_runs_on_another() -> None:
    # GIVEN two instances, the first of which blocks on its first batch until the test lets it go
    gate, running = threading.Event(), threading.Event()
    seen: list[tuple[str, int]] = []

    def instance(name: str, blocks: bool) -> Callable[[Arrays], Arrays]:
        def run(arrays: Arrays) -> Arrays:
            seen.append((name, int(arrays["x"].shape[0])))
            if blocks and len(seen) == 1:
                running.set()
                gate.wait(30)
            return {"y": arrays["x"] + 1}
        return run

    def fail(arrays: Arrays) -> Arrays:
        raise AssertionError("a lone request on a busy server runs on an instance")

    async def scenario() -> list[Arrays]:
        batcher = DynamicBatcher(fail, max_batch_size=8, max_delay_ms=0, inline_alone=False,
                                 instances=[instance("a", True), instance("b", False)])
        batcher.start()
        first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
        await asyncio.to_thread(running.wait, 30)
        # WHEN three more come while it runs
        rest = [asyncio.ensure_future(batcher.submit({"x": np.full((1, 1), i)})) for i in (1, 2, 3)]
        # THEN they are answered by the other instance, the first batch still running
        done = await asyncio.wait_for(asyncio.gather(*rest), timeout=10)
        assert not first.done()
        gate.set()
        results = [await first, *done]
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [r["y"][0, 0] for r in results] == [1, 2, 3, 4]
    assert seen[0] == ("a", 1) and {name for name, _ in seen[1:]} == {"b"}
    assert sum(rows for _, rows in seen[1:]) == 3


def test_a_count_that_is_not_a_whole_number_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env.HEAVY_INSTANCES, "AUTO")
    assert plan(3, cuda=False, vcpus=2) == (2, 1)  # any case of auto
    monkeypatch.setenv(env.HEAVY_INSTANCES, "2.5")
    with pytest.raises(ValueError, match=r"batching\.instances: expected a whole number"):
        plan("auto", cuda=False, vcpus=8)


def test_instances_are_fewer_where_their_copies_would_fill_the_memory() -> None:
    from inferstack.heavy.instances import fit_memory

    gib = 1 << 30
    assert fit_memory(4, 100 << 20, total_bytes=16 * gib) == 4
    assert fit_memory(4, 3 * gib, total_bytes=16 * gib) == 1  # a 3 GB model on 16 GB: one copy besides
    assert fit_memory(4, 1 * gib, total_bytes=16 * gib) == 4
    assert fit_memory(4, 2 * gib, total_bytes=16 * gib) == 1


def test_if_the_gathering_loop_fails_every_waiting_request_fails_and_stop_returns() -> None:
    def run(arrays: Arrays) -> Arrays:
        return arrays

    async def scenario() -> BaseException | None:
        batcher = DynamicBatcher(run, max_batch_size=8, max_delay_ms=0)

        async def broken() -> list:  # type: ignore[type-arg]
            raise RuntimeError("a defect in gathering")

        batcher._gather = broken  # type: ignore[method-assign]
        batcher.start()
        waiting = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
        done, _ = await asyncio.wait([waiting], timeout=10)
        await asyncio.wait_for(batcher.stop(), timeout=10)
        return waiting.exception() if done else None

    error = asyncio.run(scenario())
    assert isinstance(error, RuntimeError) and "defect" in str(error)

"""The heavy container's dynamic batcher: idle-aware gathering, its bounds, and each caller's own rows."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from inferstack.heavy.batching import DynamicBatcher

Arrays = dict[str, np.ndarray]


class GatedModel:
    """A model whose first call blocks until the test opens the gate: a batch "running" for as long as needed."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, arrays: Arrays) -> Arrays:
        self.threads.append(threading.get_ident())
        self.calls.append(int(arrays["x"].shape[0]))
        if len(self.calls) == 1:
            self.started.set()
            self.gate.wait(30)
        return {"y": arrays["x"] * 2}


def one(value: float) -> Arrays:
    return {"x": np.full((1, 2), value)}


async def started(model: GatedModel) -> None:
    await asyncio.to_thread(model.started.wait, 30)


def test_a_lone_request_on_an_idle_model_leaves_at_once() -> None:
    # GIVEN a batcher allowed to wait a minute for company
    model = GatedModel()
    model.gate.set()

    async def scenario() -> Arrays:
        batcher = DynamicBatcher(model, max_batch_size=32, max_delay_ms=60_000)
        batcher.start()
        # WHEN one request comes while nothing runs THEN it is answered long before max_delay_ms
        result = await asyncio.wait_for(batcher.submit(one(1)), timeout=10)
        await batcher.stop()
        return result

    assert asyncio.run(scenario())["y"].tolist() == [[2, 2]]
    # (and on the event loop's own thread: no hand-off for a request alone)
    assert model.threads == [threading.main_thread().ident]


def test_requests_that_come_while_a_batch_runs_leave_together_when_it_ends() -> None:
    model = GatedModel()

    async def scenario() -> list[Arrays]:
        batcher = DynamicBatcher(model, max_batch_size=32, max_delay_ms=0, inline_alone=False)
        batcher.start()
        # GIVEN a first request running
        first = asyncio.ensure_future(batcher.submit(one(0)))
        await started(model)
        # WHEN five more come meanwhile, and the running batch ends
        rest = [asyncio.ensure_future(batcher.submit(one(i))) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        model.gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    # THEN they ran as one call (max_delay_ms = 0 adds no wait), each with its own rows back
    assert model.calls == [1, 5]
    assert [r["y"][0, 0] for r in results] == [0, 2, 4, 6, 8, 10]


def test_max_batch_size_bounds_every_call() -> None:
    model = GatedModel()

    async def scenario() -> None:
        batcher = DynamicBatcher(model, max_batch_size=4, max_delay_ms=5, inline_alone=False)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(one(0)))
        await started(model)
        # GIVEN ten requests of one row and one of three waiting behind a running batch
        waiting = [asyncio.ensure_future(batcher.submit(one(i))) for i in range(10)]
        waiting.append(asyncio.ensure_future(batcher.submit({"x": np.ones((3, 2))})))
        model.gate.set()
        await asyncio.gather(first, *waiting)
        await batcher.stop()

    asyncio.run(scenario())
    # THEN no call exceeds four rows, and the three-row request was not split
    assert model.calls == [1, 4, 4, 2, 3]


def test_an_idle_model_waits_for_a_request_on_its_way_but_never_past_max_delay() -> None:
    model = GatedModel()
    model.gate.set()

    async def scenario() -> tuple[bool, list[int]]:
        batcher = DynamicBatcher(model, max_batch_size=32, max_delay_ms=60_000)
        batcher.start()
        # GIVEN a request being read and tokenized (on its way) when another is submitted
        with batcher.arriving():
            first = asyncio.ensure_future(batcher.submit(one(1)))
            await asyncio.sleep(0.05)
            held = not first.done()
        # WHEN it arrives THEN both leave in one call
        second = await batcher.submit(one(2))
        await first
        # AND a request on its way that never comes holds a batch no longer than max_delay_ms
        short = DynamicBatcher(model, max_batch_size=32, max_delay_ms=20)
        short.start()
        with short.arriving():
            await asyncio.wait_for(short.submit(one(3)), timeout=10)
        await batcher.stop()
        await short.stop()
        assert second["y"].tolist() == [[4, 4]]
        return held, model.calls

    held, calls = asyncio.run(scenario())
    assert held and calls == [2, 1]


def test_unstackable_shapes_run_apart_and_a_failing_request_fails_alone() -> None:
    calls: list[tuple[int, ...]] = []

    def run(arrays: Arrays) -> Arrays:
        x = arrays["x"]
        calls.append(x.shape)
        if np.any(x < 0):
            raise ValueError("negative input")
        return {"y": x * 2}

    gate = threading.Event()

    def gated(arrays: Arrays) -> Arrays:
        if not calls:
            gate.wait(30)
        return run(arrays)

    async def scenario() -> list[Any]:
        batcher = DynamicBatcher(gated, max_batch_size=16, max_delay_ms=50, inline_alone=False)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 3))}))
        await asyncio.sleep(0.05)
        # GIVEN requests of two widths, one of them bad, queued behind a running batch
        requests = [np.ones((1, 3)), np.ones((2, 3)), np.ones((1, 5)), -np.ones((1, 3)), np.full((1, 5), 3.0)]
        pending = [asyncio.ensure_future(batcher.submit({"x": r})) for r in requests]
        gate.set()
        results = await asyncio.gather(first, *pending, return_exceptions=True)
        await batcher.stop()
        return results[1:]

    results = asyncio.run(scenario())
    # THEN each gets its own rows, only the bad one fails, and the widths were stacked apart
    assert results[0]["y"].tolist() == [[2, 2, 2]]
    assert results[1]["y"].shape == (2, 3)
    assert results[2]["y"].tolist() == [[2] * 5] and results[4]["y"].tolist() == [[6] * 5]
    assert isinstance(results[3], ValueError)
    assert (4, 3) in calls and (2, 5) in calls


def test_batching_off_runs_one_call_per_request() -> None:
    async def scenario() -> int:
        batcher = DynamicBatcher(lambda a: a, max_batch_size=1, max_delay_ms=0)
        batcher.start()
        await asyncio.gather(*(batcher.submit({"x": np.ones((1, 2))}) for _ in range(10)))
        await batcher.stop()
        return batcher.stats.inference_calls

    assert asyncio.run(scenario()) == 10


def test_a_padded_model_batches_requests_of_like_lengths_and_answers_each_at_its_own() -> None:
    from inferstack.heavy.windows import CallCost
    from inferstack.inference.ragged import Padding
    from inferstack.inference.spec import TensorSpec

    padding = Padding.from_signature({"ids": 0}, [TensorSpec("ids", "int64", ["batch", "sequence"])],
                                     [TensorSpec("out", "int64", ["batch", "sequence"])])
    shapes: list[tuple[int, ...]] = []
    gate, running = threading.Event(), threading.Event()

    def run(arrays: Arrays) -> Arrays:
        shapes.append(arrays["ids"].shape)
        if len(shapes) == 1:
            running.set()
            gate.wait(30)
        return {"out": arrays["ids"] * 10}

    def ids(n: int) -> Arrays:
        return {"ids": np.arange(1, n + 1, dtype=np.int64)[None, :]}

    async def scenario(overhead: float) -> list[Arrays]:
        shapes.clear()
        gate.clear()
        running.clear()
        batcher = DynamicBatcher(run, max_batch_size=32, max_delay_ms=0, inline_alone=False, padding=padding,
                                 cost=CallCost(prior=overhead))
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(ids(5)))
        await asyncio.to_thread(running.wait, 30)
        # GIVEN requests of 3 or 4 and of 8 or 9 tokens waiting while a batch runs
        rest = [asyncio.ensure_future(batcher.submit(ids(n))) for n in (9, 3, 8, 4, 9, 3)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    # WHEN a call costs little beside its elements (a CPU) THEN like lengths run together, the batch holding the
    # oldest request (of 9 tokens) first
    results = asyncio.run(scenario(overhead=3))
    assert shapes == [(1, 5), (3, 9), (3, 4)]
    # AND every request gets its own answer at its own length
    for n, result in zip((5, 9, 3, 8, 4, 9, 3), results, strict=True):
        assert result["out"].tolist() == [[10 * (i + 1) for i in range(n)]]
    # WHEN a call costs much whatever its size (a GPU) THEN they all run as one batch
    asyncio.run(scenario(overhead=1000))
    assert shapes == [(1, 5), (6, 9)]

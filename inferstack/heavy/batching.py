"""Dynamic batching that costs nothing when idle: concurrent requests are gathered into one inference call,
and a lone request never waits for company.

Each model instance runs one batch at a time (on a GPU there is one; on a CPU a few, `heavy.instances`). When
an instance is free, the requests queued are dispatched to it at once. Requests that arrive while every
instance runs a batch queue up and leave together as soon as one ends: gathering happens only while the model
is busy anyway. The one other wait is for requests provably on their way: a server marks a request
`arriving()` from the moment it reads it until it submits its tensors (parsing, tokenization), and an idle
model holds a forming batch for those, never past `max_delay_ms` after its first request was submitted.
`max_batch_size` rows is the upper bound of every call.

Requests whose arrays cannot be stacked with the batch's (other dtypes or non-batch dims) wait for a later
batch. A model that declares padding (`inference.ragged`) stacks requests of different lengths, and the batch
is chosen among the waiting ones by length (`heavy.windows`): like lengths together, so that little is padded.
Each caller gets exactly its own rows back. If a stacked run fails, its requests run one by one, so one bad
request never fails the others (`inference.stacking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inferstack.heavy.windows import CallCost, partition
from inferstack.inference.ragged import Padding
from inferstack.inference.stacking import Arrays, RunFn, rows_of, run_stacked, stack_key
from inferstack.observability import logger

__all__ = ["BatchStats", "DynamicBatcher", "rows_of", "stack_key"]


@dataclass
class _Pending:
    arrays: Arrays
    future: asyncio.Future[Arrays]
    submitted: float
    padding: Padding | None = None
    rows: int = field(init=False)
    key: tuple[Any, ...] = field(init=False)
    #: Elements per row along the padded axes (1 without padding).
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = rows_of(self.arrays)
        if self.padding is None:
            self.key, self.size = stack_key(self.arrays), 1
        else:
            self.key, self.size = self.padding.key(self.arrays), self.padding.size(self.arrays)


#: Hears of each batched run: rows, requests waiting, milliseconds the model took.
BatchObserver = Callable[[int, int, float], None]


@dataclass
class BatchStats:
    requests: int = 0
    inference_calls: int = 0
    rows: int = 0
    largest_batch_rows: int = 0
    #: Batches that waited for requests on their way (the model idle meanwhile), and how long in all.
    held_batches: int = 0
    held_s: float = 0.0
    #: Ragged batching: elements run (padding included) and the real ones among them.
    padded_elements: int = 0
    real_elements: int = 0


class DynamicBatcher:
    def __init__(self, run: RunFn, *, max_batch_size: int = 32, max_delay_ms: float = 5,
                 instances: Sequence[RunFn] | None = None, inline_alone: bool = True,
                 on_batch: BatchObserver | None = None, padding: Padding | None = None,
                 cost: CallCost | None = None) -> None:
        """`instances`: model instances that each run one batch at a time, side by side (default: `run` alone).
        `inline_alone`: run a lone request on an idle server with `run`, on the event loop's own thread, sparing
        two thread hand-offs (the loop has nothing else to do meanwhile). `on_batch(rows, queue_depth, run_ms)`
        hears of every batched run: its rows, the requests left waiting, and the model's time (the metrics).
        `padding`: the model's, where it declares one: requests of different lengths stack, chosen by length with
        `cost`, what a call costs (learnt from the calls run)."""
        self._run_fn = run
        self._instances = list(instances or [run])
        self.padding = padding
        self.cost = cost or CallCost()
        self.on_batch = on_batch
        self.inline_alone = inline_alone
        self.max_batch_size, self.max_delay_s = max_batch_size, max_delay_ms / 1000
        #: A thread per instance: each runs one batch while the next ones form.
        self._executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inference-{i}")
                           for i in range(len(self._instances))]
        self._free = list(range(len(self._instances)))[::-1]
        self.stats = BatchStats()
        self._stats_lock = threading.Lock()
        self._pending: deque[_Pending] = deque()
        self._ready: deque[list[_Pending]] = deque()  # batches gathered, waiting for an instance
        self._changed: asyncio.Event | None = None
        self._arriving = 0
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def instances(self) -> int:
        return len(self._instances)

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    @property
    def busy(self) -> bool:
        """Is a batch running (or about to)? A request submitted now would queue for the next one."""
        return bool(self._running or self._pending or self._ready)

    def start(self) -> None:
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="dynamic-batcher")
        self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """The gathering loop ended (stopped, or a defect): nothing waits for it in vain."""
        error = None if task.cancelled() else task.exception()
        failure = error or RuntimeError("the dynamic batcher stopped")
        if error is not None:
            logger.error("the dynamic batcher failed", exc_info=error)
        waiting = [*self._pending, *(p for batch in self._ready for p in batch)]
        self._pending.clear()
        self._ready.clear()
        for p in waiting:
            self._settle_error(p, failure)

    async def stop(self) -> None:
        """Finish every request already submitted, then stop."""
        while self.busy and self._task is not None and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure: logged by _stopped
                await self._task

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request on its way: read but not yet submitted (parsing, tokenization). An idle model holds
        a forming batch for such requests, up to `max_delay_ms`. Submit after leaving the block."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            self._notify()

    async def submit(self, arrays: Arrays) -> Arrays:
        assert self._changed is not None, "start() the batcher first"
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        self._pending.append(_Pending(arrays, future, time.monotonic(), self.padding))
        self._notify()
        return await future

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _changes(self, timeout: float | None) -> bool:
        """Wait until a request is submitted or one on its way gives up; False on timeout."""
        assert self._changed is not None
        self._changed.clear()
        if timeout is None:
            await self._changed.wait()
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _loop(self) -> None:
        while True:
            while not self._free:  # every instance runs a batch: requests queue meanwhile
                await self._changes(None)
            if not self._ready:
                while not self._pending:
                    await self._changes(None)
                self._ready.extend([await self._gather()] if self.padding is None else await self._gather_round())
            instance = self._free.pop()
            task = asyncio.get_running_loop().create_task(self._execute(self._ready.popleft(), instance))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _hold(self) -> _Pending:
        """While requests are on their way and the oldest's fellows fill no batch yet, wait for them, never past
        `max_delay_ms` after it was submitted; returns the oldest request (still queued)."""
        first = self._pending[0]
        deadline = first.submitted + self.max_delay_s
        held_since: float | None = None
        while self.enabled:
            rows = sum(p.rows for p in self._pending if p.key == first.key)
            now = time.monotonic()
            if rows >= self.max_batch_size or not self._arriving or now >= deadline:
                break
            held_since = held_since or now
            if not await self._changes(deadline - now):
                break
        if held_since is not None:
            self.stats.held_batches += 1
            self.stats.held_s += time.monotonic() - held_since
        return first

    async def _gather(self) -> list[_Pending]:
        """The next batch: the oldest request and every queued one that stacks with it (`_hold` first)."""
        first = await self._hold()
        self._pending.popleft()
        batch, rows = [first], first.rows
        skipped: list[_Pending] = []
        full = not self.enabled or rows >= self.max_batch_size
        while self._pending and not full:
            item = self._pending.popleft()
            if item.key != first.key:
                skipped.append(item)  # another shape: it leads a later batch
            elif rows + item.rows > self.max_batch_size:
                skipped.append(item)  # would overflow: it leads the next batch
                full = True
            else:
                batch.append(item)
                rows += item.rows
                full = rows >= self.max_batch_size
        self._pending.extendleft(reversed(skipped))
        return batch

    async def _gather_round(self) -> list[list[_Pending]]:
        """The next round of a padded model: the oldest waiting requests that stack, up to `max_batch_size` rows
        (`_hold` first), split into batches of like lengths (`windows.partition`), the one holding the oldest
        request first."""
        first = await self._hold()
        round_: list[_Pending] = []
        rows, kept = 0, deque[_Pending]()
        for p in self._pending:
            if p.key == first.key and (not round_ or (self.enabled and rows + p.rows <= self.max_batch_size)):
                round_.append(p)
                rows += p.rows
            else:
                kept.append(p)
        self._pending = kept
        batches = [[round_[i] for i in batch] for batch in partition(
            [p.size for p in round_], [p.rows for p in round_], max_rows=self.max_batch_size,
            overhead=self.cost.overhead)]
        # the batch holding the oldest request first: shortest first would leave long requests last round after
        # round (their clients come back after the round has formed), the tail of the latencies
        batches.sort(key=lambda batch: min(p.submitted for p in batch))
        for batch in batches:
            self.stats.padded_elements += sum(p.rows for p in batch) * max(p.size for p in batch)
            self.stats.real_elements += sum(p.rows * p.size for p in batch)
        return batches

    async def _execute(self, batch: list[_Pending], instance: int) -> None:
        arrays = [p.arrays for p in batch]
        results: list[Arrays | Exception]
        try:
            alone = len(batch) == 1 and len(self._running) <= 1 and not (self._pending or self._ready or self._arriving)
            if self.inline_alone and alone:
                # Alone on an idle server: no thread hand-off (on a busy CPU each costs a scheduler wait)
                results = run_stacked(lambda a: self._run(self._run_fn, a, observe=False), arrays, self.padding)
            else:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._executors[instance], run_stacked, lambda a: self._run(self._instances[instance], a),
                    arrays, self.padding)
        except Exception as exc:  # not the model's (run_stacked answers those per request): no request is lost
            results = [exc] * len(batch)
        finally:
            self._free.append(instance)
            self._notify()
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self._settle_error(p, result)
            else:
                self._settle(p, result)

    def _run(self, run: RunFn, arrays: Arrays, *, observe: bool = True) -> Arrays:
        """One model call, counted; `observe`: an instance's, what `cost` learns from (the lone request's session
        over every core costs otherwise)."""
        rows = rows_of(arrays)
        started = time.perf_counter()
        outputs = run(arrays)
        ms = (time.perf_counter() - started) * 1000
        with self._stats_lock:
            self.stats.inference_calls += 1
            self.stats.rows += rows
            self.stats.largest_batch_rows = max(self.stats.largest_batch_rows, rows)
        if observe and self.padding is not None:
            self.cost.observe(rows * self.padding.size(arrays), ms)
        if self.on_batch is not None:
            self.on_batch(rows, len(self._pending), ms)
        return outputs

    @staticmethod
    def _settle(p: _Pending, outputs: Arrays) -> None:
        if not p.future.done():
            p.future.set_result(outputs)

    @staticmethod
    def _settle_error(p: _Pending, exc: BaseException) -> None:
        if not p.future.done():
            p.future.set_exception(exc)

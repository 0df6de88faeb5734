"""Dynamic batching that costs nothing when idle: concurrent requests are gathered into one inference call,
and a lone request never waits for company.

One batch runs at a time (a model instance, and its GPU, runs one call while the next one forms). When the
model is idle, a request is dispatched at once, together with whatever is already queued. Requests that
arrive while a batch runs queue up and leave together as soon as it ends: gathering happens only while the
model is busy anyway. The one other wait is for requests provably on their way: a server marks a request
`arriving()` from the moment it reads it until it submits its tensors (parsing, tokenization), and an idle
model holds a forming batch for those, never past `max_delay_ms` after its first request was submitted.
`max_batch_size` rows is the upper bound of every call.

Requests whose arrays cannot be stacked with the batch's (other dtypes or non-batch dims) wait for a later
batch. Each caller gets exactly its own rows back. If a stacked run fails, its requests run one by one, so one
bad request never fails the others (`inference.stacking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inferstack.inference.stacking import Arrays, RunFn, rows_of, run_stacked, stack_key

__all__ = ["BatchStats", "DynamicBatcher", "rows_of", "stack_key"]


@dataclass
class _Pending:
    arrays: Arrays
    future: asyncio.Future[Arrays]
    submitted: float
    rows: int = field(init=False)
    key: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.rows, self.key = rows_of(self.arrays), stack_key(self.arrays)


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


class DynamicBatcher:
    def __init__(self, run: RunFn, *, max_batch_size: int = 32, max_delay_ms: float = 5,
                 executor: Executor | None = None, inline_alone: bool = True,
                 on_batch: BatchObserver | None = None) -> None:
        """`inline_alone`: run a lone request on an idle server on the event loop's own thread, sparing two
        thread hand-offs (the loop has nothing else to do meanwhile). `on_batch(rows, queue_depth, run_ms)` hears
        of every batched run: its rows, the requests left waiting, and the model's time (the metrics)."""
        self._run_fn = run
        self.on_batch = on_batch
        self.inline_alone = inline_alone
        self.max_batch_size, self.max_delay_s = max_batch_size, max_delay_ms / 1000
        #: One inference at a time: a model instance (and its GPU) runs one batch while the next one forms.
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.stats = BatchStats()
        self._pending: deque[_Pending] = deque()
        self._changed: asyncio.Event | None = None
        self._arriving = 0
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    @property
    def busy(self) -> bool:
        """Is a batch running (or about to)? A request submitted now would queue for the next one."""
        return self._busy or bool(self._pending)

    def start(self) -> None:
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Finish every request already submitted, then stop."""
        while self._pending or self._busy:
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
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
        self._pending.append(_Pending(arrays, future, time.monotonic()))
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
            while not self._pending:
                await self._changes(None)
            batch = await self._gather()
            self._busy = True
            try:
                await self._execute(batch)
            finally:
                self._busy = False

    async def _gather(self) -> list[_Pending]:
        """The next batch: the oldest request, every queued one that stacks with it, and, while requests are
        on their way and `max_delay_ms` after the first allows, those too."""
        first = self._pending.popleft()
        batch, rows = [first], first.rows
        skipped: list[_Pending] = []
        deadline = first.submitted + self.max_delay_s
        held_since: float | None = None
        full = not self.enabled or rows >= self.max_batch_size
        while not full:
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
            now = time.monotonic()
            if full or not self._arriving or now >= deadline:
                break
            held_since = held_since or now
            if not await self._changes(deadline - now):
                break
        if held_since is not None:
            self.stats.held_batches += 1
            self.stats.held_s += time.monotonic() - held_since
        self._pending.extendleft(reversed(skipped))
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        arrays = [p.arrays for p in batch]
        if self.inline_alone and len(batch) == 1 and not self._pending and not self._arriving:
            # Alone on an idle server: no thread hand-off (on a busy CPU each costs a scheduler wait)
            results = run_stacked(self._run, arrays)
        else:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self.executor, run_stacked, self._run, arrays)
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self._settle_error(p, result)
            else:
                self._settle(p, result)

    def _run(self, arrays: Arrays) -> Arrays:
        self.stats.inference_calls += 1
        rows = rows_of(arrays)
        self.stats.rows += rows
        self.stats.largest_batch_rows = max(self.stats.largest_batch_rows, rows)
        if self.on_batch is None:
            return self._run_fn(arrays)
        started = time.perf_counter()
        outputs = self._run_fn(arrays)
        self.on_batch(rows, len(self._pending), (time.perf_counter() - started) * 1000)
        return outputs

    @staticmethod
    def _settle(p: _Pending, outputs: Arrays) -> None:
        if not p.future.done():
            p.future.set_result(outputs)

    @staticmethod
    def _settle_error(p: _Pending, exc: BaseException) -> None:
        if not p.future.done():
            p.future.set_exception(exc)

"""Dynamic batching: concurrent requests are gathered into one inference call.

A batch closes when it holds `max_batch_size` rows or `max_delay_ms` after its first request arrived,
whichever comes first. Requests whose arrays cannot be stacked with the batch's (other dtypes or non-batch
dims) wait for a later batch. Each caller gets exactly its own rows back. If a stacked run fails, its requests
run one by one, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inferstack.inference.stacking import Arrays, RunFn, rows_of, run_stacked, stack_key

__all__ = ["BatchStats", "DynamicBatcher", "rows_of", "stack_key"]


@dataclass
class _Pending:
    arrays: Arrays
    future: asyncio.Future[Arrays]
    rows: int = field(init=False)
    key: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.rows, self.key = rows_of(self.arrays), stack_key(self.arrays)


@dataclass
class BatchStats:
    requests: int = 0
    inference_calls: int = 0
    rows: int = 0
    largest_batch_rows: int = 0


class DynamicBatcher:
    def __init__(self, run: RunFn, *, max_batch_size: int = 32, max_delay_ms: float = 5,
                 executor: Executor | None = None) -> None:
        self._run_fn = run
        self.max_batch_size, self.max_delay_s = max_batch_size, max_delay_ms / 1000
        #: One inference at a time: a model instance (and its GPU) runs one batch while the next one forms.
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._held: deque[_Pending] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1 and self.max_delay_s > 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Finish every request already submitted, then stop."""
        if self._queue is not None:
            while not self._queue.empty() or self._held:
                await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, arrays: Arrays) -> Arrays:
        assert self._queue is not None, "start() the batcher first"
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        await self._queue.put(_Pending(arrays, future))
        return await future

    async def _next(self, timeout: float | None) -> _Pending | None:
        assert self._queue is not None
        if self._held:
            return self._held.popleft()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            return self._queue.get_nowait() if not self._queue.empty() else None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _loop(self) -> None:
        while True:
            first = await self._next(None)
            assert first is not None
            batch, rows = [first], first.rows
            deadline = time.monotonic() + self.max_delay_s
            skipped: list[_Pending] = []
            while self.enabled and rows < self.max_batch_size:
                item = await self._next(deadline - time.monotonic())
                if item is None:
                    break
                if item.key != first.key:
                    skipped.append(item)  # another shape: it leads a later batch
                    continue
                if rows + item.rows > self.max_batch_size:
                    skipped.append(item)  # would overflow: it leads the next batch
                    break
                batch.append(item)
                rows += item.rows
            self._held.extendleft(reversed(skipped))
            await self._execute(batch)

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, run_stacked, self._run, [p.arrays for p in batch])
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
        return self._run_fn(arrays)

    @staticmethod
    def _settle(p: _Pending, outputs: Arrays) -> None:
        if not p.future.done():
            p.future.set_result(outputs)

    @staticmethod
    def _settle_error(p: _Pending, exc: BaseException) -> None:
        if not p.future.done():
            p.future.set_exception(exc)


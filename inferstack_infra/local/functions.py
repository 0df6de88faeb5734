"""Run each Lambda function of the deployment as local runtime processes and invoke them over loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import httpx

from inferstack import env
from inferstack.topology import FunctionSpec
from inferstack_infra.local import lifeline
from inferstack_infra.local.runtime import READY
from inferstack_infra.nodelay import async_transport, transport
from inferstack_infra.paths import python_path


class FunctionStartError(RuntimeError):
    """A function's init phase failed (its log says why)."""


class FunctionProcess:
    """One execution environment: a `infra.local.runtime` process serving one invocation at a time."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], log: Callable[[str], None]) -> None:
        self.spec, self.environment, self.log = spec, environment, log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, ready_timeout_s: float = 120) -> None:
        cmd = [sys.executable, "-m", "inferstack_infra.local.runtime", "--handler", self.spec.handler,
               "--name", self.spec.key,
               "--memory-mb", str(self.spec.memory_mb), "--timeout-s", str(self.spec.timeout_s)]
        environ = {**os.environ, **self.environment, **python_path(), "PYTHONUNBUFFERED": "1",
                   env.LAMBDA_MEMORY_MB: str(self.spec.memory_mb), "AWS_LAMBDA_FUNCTION_NAME": self.spec.key}
        extra = lifeline.popen_kwargs()  # its own process group; it ends if this process dies
        self.proc = subprocess.Popen(cmd, env={**environ, **extra.pop("env")}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, **extra)
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc.stdout, ready), daemon=True).start()
        if not ready.wait(ready_timeout_s) or not self.url:
            self.stop()
            raise FunctionStartError(f"function {self.spec.key} did not start (see its log above)")

    def _pump(self, stream: IO[str] | None, ready: threading.Event) -> None:
        assert stream is not None
        for line in stream:
            if line.startswith(READY) and not ready.is_set():
                self.url = f"http://127.0.0.1:{line.split()[1]}/2015-03-31/functions/{self.spec.key}/invocations"
                ready.set()
            else:
                self.log(line.rstrip("\n"))
        ready.set()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        lifeline.stop_all([self.proc])


def prefixed(log: Callable[[str, str], None], part: str) -> Callable[[str], None]:
    return lambda line: log(part, line)


class LocalFunctions:
    """The gateway's `Invoker`: one process per function, invocations queued as Lambda queues a burst
    onto a fixed number of environments. A function that runs past the gateway's timeout is restarted,
    as Lambda replaces an environment whose invocation timed out."""

    def __init__(self, specs: list[FunctionSpec], environment: Callable[[FunctionSpec], dict[str, str]],
                 log: Callable[[str, str], None]) -> None:
        self.procs = {s.key: FunctionProcess(s, environment(s), prefixed(log, s.key)) for s in specs}
        self.locks: dict[str, asyncio.Lock] = {}
        self.client: httpx.AsyncClient | None = None
        self.sync_client = httpx.Client(timeout=None, transport=transport())
        self._restarting = threading.Lock()
        #: Called after an environment was replaced (it listens on a new port).
        self.on_restart: Callable[[], None] | None = None
        #: Set when the stack stops: an environment found dead then is not replaced.
        self.stopping = threading.Event()

    def start(self) -> None:
        errors: list[BaseException] = []

        def run(p: FunctionProcess) -> None:
            try:
                p.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in self.procs.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]

    def stop(self) -> None:
        """Stop every environment at once, busy or not (SIGTERM, a short grace, SIGKILL)."""
        self.stopping.set()
        lifeline.stop_all(p.proc for p in self.procs.values())

    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
        result, failed, _ = await self.invoke_timed(function, event, timeout_s)
        return result, failed

    async def invoke_timed(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool, float]:
        """`invoke`, and the invocation's duration in milliseconds once an environment took it (Lambda's
        `Duration`: without the wait for a free environment)."""
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=None, transport=async_transport())
        lock = self.locks.setdefault(function, asyncio.Lock())
        proc = self.procs[function]
        async with lock:
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(self.client.post(proc.url, json=event), timeout_s)
            except TimeoutError:
                await asyncio.to_thread(self._restart, proc)
                raise
            except httpx.HTTPError:
                if not proc.alive:
                    await asyncio.to_thread(self._restart, proc)
                raise
            return response.json(), "x-amz-function-error" in response.headers, (time.perf_counter() - started) * 1000

    def invoke_sync(self, function: str, event: dict[str, Any], timeout_s: float | None = None) -> tuple[Any, bool]:
        """Invoke from a thread (the SQS pollers). A dead execution environment is replaced, as Lambda does,
        and the invocation fails."""
        proc = self.procs[function]
        try:
            response = self.sync_client.post(proc.url, json=event, timeout=timeout_s or proc.spec.timeout_s + 5)
        except httpx.HTTPError:
            if not proc.alive:
                self._restart(proc)
            raise
        return response.json(), "x-amz-function-error" in response.headers

    def _restart(self, proc: FunctionProcess) -> None:
        with self._restarting:
            if self.stopping.is_set():
                return
            proc.stop()
            proc.start()
            if self.on_restart is not None:
                self.on_restart()

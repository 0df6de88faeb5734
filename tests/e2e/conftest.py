from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferstack_infra.local.aws import free_port
from tests.conftest import EXAMPLE_MANIFEST, ROOT

__all__ = ["child_processes", "eventually", "free_port"]

FREE_KEY = "e2e-free-key-0001"
PRO_KEY = "e2e-pro-key-0001"


def eventually(check: Callable[[], Any], timeout_s: float = 40) -> Any:
    """Poll `check` until it returns something truthy (and return that), or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def child_processes(parent: int, needle: str) -> list[int]:
    """PIDs of `parent`'s children whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and needle in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class RunningStack:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def client(self, key: str | None = PRO_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key} if key else {}, timeout=30)


def start_dev(log: Path, *args: str, manifest: Path = EXAMPLE_MANIFEST, port: int | None = None) -> RunningStack:
    port = port or free_port()
    cmd = [sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(manifest), "--port", str(port), *args]
    out = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # generous: a loaded shared machine starts the stack slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"inferstack dev exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return RunningStack(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"inferstack dev did not become healthy:\n{log.read_text()}")


def stop_dev(stack: RunningStack) -> None:
    stack.proc.send_signal(signal.SIGINT)
    try:
        stack.proc.wait(15)
    except subprocess.TimeoutExpired:
        stack.proc.kill()
        stack.proc.wait()


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[RunningStack]:
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    stack = start_dev(log, "--api-key", f"{FREE_KEY}:free", "--api-key", f"{PRO_KEY}:pro")
    yield stack
    stop_dev(stack)

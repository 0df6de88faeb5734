from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLE_MANIFEST, ROOT

FREE_KEY = "e2e-free-key-0001"
PRO_KEY = "e2e-pro-key-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningStack:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def client(self, key: str | None = PRO_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key} if key else {}, timeout=30)


def start_dev(log: Path, *args: str, manifest: Path = EXAMPLE_MANIFEST, port: int | None = None) -> RunningStack:
    port = port or free_port()
    cmd = [sys.executable, "-m", "infra.cli", "dev", "--manifest", str(manifest), "--port", str(port), *args]
    out = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
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

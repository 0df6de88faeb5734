"""Nothing outlives `inferstack dev` (`inferstack_infra.local.lifeline`): however it is stopped (Ctrl-C,
SIGTERM, or killed outright), every process it started ends too, busy or not.

Times are printed, not asserted; the 30 s bounds only keep a hung stop from hanging the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import PRO_KEY, RunningStack, start_dev

pytestmark = pytest.mark.e2e
HANG_GUARD_S = 30


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    table = process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}  # a zombie has ended


def wait_gone(pids: set[int], timeout_s: float = HANG_GUARD_S) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@pytest.fixture
def stack(tmp_path: Path, iris_model: Path) -> Iterator[RunningStack]:
    manifest = tmp_path / "inferstack.toml"
    manifest.write_text(f"""
name = "lifecycle"
[[api.plans]]
name = "free"
throttle = {{ rate = 1000, burst = 1000 }}
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
[[models]]
name = "mlp"
path = "{iris_model.with_name('mlp.onnx')}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
""")
    running = start_dev(tmp_path / "dev.log", "--api-key", f"{PRO_KEY}:free", manifest=manifest)
    kids = descendants(running.proc.pid)
    yield running
    if running.proc.poll() is None:  # a failed test: leave nothing behind all the same
        running.proc.kill()
        running.proc.wait()
    for pid in alive(kids):
        os.kill(pid, signal.SIGKILL)


def children_of(stack: RunningStack) -> set[int]:
    # GIVEN the stack's processes: an execution environment per function and the heavy model's server
    kids = descendants(stack.proc.pid)
    assert len(kids) >= 5, kids  # api, predict-iris, worker-iris, webhooks, dead letters..., the heavy server
    return kids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_every_process_it_started(stack: RunningStack, sig: signal.Signals) -> None:
    kids = children_of(stack)
    began = time.monotonic()
    stack.proc.send_signal(sig)
    stack.proc.wait(HANG_GUARD_S)
    print(f"{sig.name}: inferstack dev exited in {time.monotonic() - began:.1f} s")
    assert wait_gone(kids) == set()
    assert "Traceback" not in stack.log.read_text()


def test_killing_inferstack_dev_outright_ends_its_children(stack: RunningStack) -> None:
    kids = children_of(stack)
    began = time.monotonic()
    stack.proc.kill()  # SIGKILL: no handler runs; each child notices its parent is gone
    stack.proc.wait()
    assert wait_gone(kids) == set()
    print(f"SIGKILL: children gone {time.monotonic() - began:.1f} s after")


def test_ctrl_c_on_a_loaded_stack_ends_everything(stack: RunningStack) -> None:
    kids = children_of(stack)
    # GIVEN clients submitting jobs and predicting as fast as they can (the worker busy with batches)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=stack.url, headers={"x-api-key": PRO_KEY}, timeout=10) as http:
            while not stop.is_set():
                try:
                    http.post("/v1/jobs", json={"model": "iris", "inputs": [[5.1, 3.5, 1.4, 0.2]] * 4})
                    http.post("/v1/models/iris/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
                except httpx.HTTPError:
                    time.sleep(0.05)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for c in clients:
        c.start()
    time.sleep(5)
    # WHEN Ctrl-C arrives
    began = time.monotonic()
    stack.proc.send_signal(signal.SIGINT)
    try:
        stack.proc.wait(HANG_GUARD_S)
    finally:
        stop.set()
    print(f"loaded Ctrl-C: inferstack dev exited in {time.monotonic() - began:.1f} s")
    # THEN everything it started is gone
    assert wait_gone(kids) == set()
    assert stack.proc.returncode == 0
    for c in clients:
        c.join(15)


def test_nothing_is_left_when_the_stack_fails_to_stop_itself(tmp_path: Path) -> None:
    """The lifeline's watch on its own: a child started with it ends when its parent dies."""
    script = tmp_path / "parent.py"
    script.write_text("""
import subprocess, sys, time, os
from inferstack_infra.local import lifeline
extra = lifeline.popen_kwargs()
child = subprocess.Popen([sys.executable, "-m", "inferstack_infra.local.lifeline", "http.server", "0",
                          "--bind", "127.0.0.1"], env={**os.environ, **extra.pop("env")},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **extra)
print(child.pid, flush=True)
time.sleep(600)
""")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1)
    assert alive({child})
    parent.kill()
    parent.wait()
    assert wait_gone({child}) == set()

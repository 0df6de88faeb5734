"""`inferstack_infra.local.lifeline`: a stopped child ends with whatever it started, even one that ignores
SIGTERM (a worker busy in a batch)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from inferstack_infra.local import lifeline

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # busy: does not stop when asked
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_stop_all_ends_a_child_that_ignores_sigterm_and_what_it_started() -> None:
    extra = lifeline.popen_kwargs()
    assert extra["env"] == {lifeline.PARENT_PID: str(os.getpid())} and extra["start_new_session"] is True
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **extra.pop("env")}, **extra)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    began = time.monotonic()
    lifeline.stop_all([proc, None], grace_s=0.5)
    assert proc.poll() is not None and time.monotonic() - began < 10  # SIGKILLed after the grace
    deadline = time.monotonic() + 10
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(grandchild)  # the whole process group went with it

"""Nothing outlives `inferstack dev`: how its child processes are started, stopped, and end with it.

- Each child (a function's execution environment, a heavy model's server) starts in a process group of its
  own (`popen_kwargs`), so that a terminal's Ctrl-C reaches `inferstack dev` alone, which stops every part in
  order, and a stop signal to the group also ends whatever the child started.
- `stop_all` stops children together: SIGTERM to each group, a short grace, then SIGKILL. A busy child (a
  worker inside a large batch) is ended all the same.
- If `inferstack dev` itself dies without stopping them (SIGKILL, a crash), each child notices within half a
  second that its parent is gone (`watch_parent`: its parent process ID changes when it is re-parented) and
  kills its own process group. `prctl(PR_SET_PDEATHSIG)` would not do: it fires when the *thread* that started
  the child ends, and the stack starts and replaces children from short-lived threads.

A child runs under the watch either by calling `watch_parent_from_env()` (the local Lambda runtime), or through
this module: `python -m inferstack_infra.local.lifeline <module> [args...]` runs `<module>` as `__main__`.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

#: The environment variable naming the process whose death ends the child.
PARENT_PID = "INFERSTACK_PARENT_PID"
#: How long a stopped child has between SIGTERM and SIGKILL.
GRACE_S = 2.0


def popen_kwargs() -> dict[str, Any]:
    """Extra `subprocess.Popen` arguments for a child of the stack: its own process group, and the parent's
    PID for `watch_parent_from_env`. Merge `env` with the child's own environment."""
    return {"start_new_session": True, "env": {PARENT_PID: str(os.getpid())}}


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_all(procs: Iterable[subprocess.Popen[Any] | None], grace_s: float = GRACE_S) -> None:
    """SIGTERM every child's process group at once, wait up to `grace_s` for all, SIGKILL what is left."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        _kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in running:
        _kill_group(proc.pid, signal.SIGKILL)  # the group too: what the child started, even if it exited
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def watch_parent(parent_pid: int, interval_s: float = 0.5) -> threading.Thread:
    """In a child: when `parent_pid` is no longer this process's parent, kill this process's group."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        group = os.getpgid(0)
        if group == os.getpid():  # the group is ours alone (start_new_session): end it all
            os.killpg(group, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="lifeline", daemon=True)
    thread.start()
    return thread


def watch_parent_from_env() -> None:
    """`watch_parent` for the PID in `$INFERSTACK_PARENT_PID`, when set (a child started by the stack)."""
    value = os.environ.get(PARENT_PID)
    if value and value.isdigit():
        parent = int(value)
        if os.getppid() != parent:  # the parent died before the watch began
            os.kill(os.getpid(), signal.SIGKILL)
        watch_parent(parent)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m inferstack_infra.local.lifeline <module> [args...]")
    watch_parent_from_env()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

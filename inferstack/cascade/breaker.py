"""A circuit breaker, one per endpoint per execution environment.

closed --(`failures` within `window_s`)--> open --(`cool_down_s`)--> half-open: one probe goes through;
its success closes the circuit, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from inferstack.cascade.config import Circuit
from inferstack.observability import logger

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, name: str, config: Circuit, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.config, self.clock = name, config, clock
        self._state: State = "closed"
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()
        #: Transitions, for the logs and the tests: (state, at).
        self.opened = 0

    @property
    def state(self) -> State:
        with self._lock:
            self._tick()
            return self._state

    def _tick(self) -> None:
        if self._state == "open" and self.clock() - self._opened_at >= self.config.cool_down_s:
            self._move("half-open")
            self._probing = False

    def _move(self, state: State) -> None:
        if state != self._state:
            logger.info("circuit breaker", extra={"model": self.name, "from": self._state, "to": state})
        self._state = state

    def allow(self) -> bool:
        """May a call go out now? In half-open, only the one probe."""
        with self._lock:
            self._tick()
            if self._state == "closed":
                return True
            if self._state == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def retry_after_s(self) -> int:
        """Whole seconds until the circuit lets a probe through (at least 1)."""
        with self._lock:
            left = self.config.cool_down_s - (self.clock() - self._opened_at) if self._state == "open" else 1
            return max(1, math.ceil(left))

    def record_success(self) -> None:
        with self._lock:
            self._failures.clear()
            self._probing = False
            self._move("closed")

    def release_probe(self) -> None:
        """The probe ended without a verdict (its budget was too short to judge the endpoint)."""
        with self._lock:
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            now = self.clock()
            if self._state == "half-open":
                self._open(now)
                return
            if self._state == "open":
                return
            self._failures.append(now)
            while self._failures and self._failures[0] <= now - self.config.window_s:
                self._failures.popleft()
            if len(self._failures) >= self.config.failures:
                self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at, self._probing = now, False
        self._failures.clear()
        self.opened += 1
        self._move("open")

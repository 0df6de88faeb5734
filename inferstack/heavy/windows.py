"""Which waiting requests of different lengths run together (ragged batching, `inference.ragged`).

Padding a request of 11 tokens to a batch's 23 makes the model do twice its work on it; splitting waiting
requests into many batches of exact lengths pays a model call's fixed cost each time. A call is modelled as
`a + b * padded elements` (rows times the padded length), and the waiting requests are batched to cost the least
work: requests are taken in rounds, the oldest `max_batch_size` rows waiting (what one batch would hold
without padding awareness), and a round is split into batches of like lengths where that costs less than
padding them all to its longest (`inference.ragged.partition`), then run oldest first. So a request waits at
most for the round before its own, as with plain batching, while far less is padded.

`a/b`, a call's fixed cost in elements, depends on the model and the hardware: small on a CPU (work grows
with every token, so padding is dear and smaller batches of like lengths win), large on a GPU (a call costs much
the same whatever its size, so every waiting request joins one batch). `CallCost` learns it from the batches the
model runs, by least squares over recent calls; until it has seen calls of enough different sizes it uses a
prior.
"""

from __future__ import annotations

from threading import Lock

from inferstack.inference.ragged import DEFAULT_CALL_OVERHEAD, partition

__all__ = ["PRIOR_OVERHEAD", "CallCost", "partition"]

#: A call's fixed cost, in padded elements, until measured.
PRIOR_OVERHEAD = DEFAULT_CALL_OVERHEAD


class CallCost:
    """A model call's time as `a + b * elements`, fitted by exponentially weighted least squares."""

    def __init__(self, prior: float = PRIOR_OVERHEAD, *, decay: float = 0.98, min_calls: int = 20) -> None:
        self.prior, self.decay, self.min_calls = prior, decay, min_calls
        self.calls = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0
        self._lock = Lock()

    def observe(self, elements: int, ms: float) -> None:
        """One call of the model instances' (from any thread); calls on another session do not belong here."""
        d = self.decay
        with self._lock:
            self.calls += 1
            self._w = self._w * d + 1
            self._x = self._x * d + elements
            self._y = self._y * d + ms
            self._xx = self._xx * d + elements * elements
            self._xy = self._xy * d + elements * ms

    @property
    def overhead(self) -> float:
        """`a/b`: what one call costs beyond its elements, in elements. The prior until the fit is sound: enough
        calls, of sizes that differ, and a cost that grows with size."""
        with self._lock:
            calls, w, x, y, xx, xy = self.calls, self._w, self._x, self._y, self._xx, self._xy
        if calls < self.min_calls:
            return self.prior
        mean_x, mean_y = x / w, y / w
        var = xx / w - mean_x * mean_x
        if var <= (0.25 * mean_x) ** 2:  # sizes too alike to tell a fixed cost from a per-element one
            return self.prior
        slope = (xy / w - mean_x * mean_y) / var
        if slope <= 0:
            return self.prior
        return max(0.0, (mean_y - slope * mean_x) / slope)

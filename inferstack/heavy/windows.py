"""Which waiting requests of different lengths run together (ragged batching, `inference.ragged`).

Padding a request of 11 tokens to a batch's 23 makes the model do twice its work on it; splitting waiting
requests into many batches of exact lengths pays a model call's fixed cost each time. A call is modelled as
`a + b * padded elements` (rows times the padded length), and the waiting requests are batched to cost the least
work: requests are taken in rounds, the oldest `max_batch_size` rows waiting (what one batch would hold
without padding awareness), and a round is split into batches of like lengths where that costs less than
padding them all to its longest (`partition`), then run oldest first. So a request waits at most for the
round before its own, as with plain batching, while far less is padded.

`a/b`, a call's fixed cost in elements, depends on the model and the hardware: small on a CPU (work grows
with every token, so padding is dear and smaller batches of like lengths win), large on a GPU (a call costs much
the same whatever its size, so every waiting request joins one batch). `CallCost` learns it from the batches the
model runs, by least squares over recent calls; until it has seen calls of enough different sizes it uses a
prior.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A call's fixed cost, in padded elements, until measured: a few rows of a sentence.
PRIOR_OVERHEAD = 64.0


class CallCost:
    """A model call's time as `a + b * elements`, fitted by exponentially weighted least squares."""

    def __init__(self, prior: float = PRIOR_OVERHEAD, *, decay: float = 0.98, min_calls: int = 20) -> None:
        self.prior, self.decay, self.min_calls = prior, decay, min_calls
        self.calls = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0

    def observe(self, elements: int, ms: float) -> None:
        d = self.decay
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
        if self.calls < self.min_calls:
            return self.prior
        mean_x, mean_y = self._x / self._w, self._y / self._w
        var = self._xx / self._w - mean_x * mean_x
        if var <= (0.25 * mean_x) ** 2:  # sizes too alike to tell a fixed cost from a per-element one
            return self.prior
        slope = (self._xy / self._w - mean_x * mean_y) / var
        if slope <= 0:
            return self.prior
        return max(0.0, (mean_y - slope * mean_x) / slope)


def partition(sizes: Sequence[int], rows: Sequence[int], *, max_rows: int, overhead: float) -> list[list[int]]:
    """The requests of one round split into batches of like lengths, shortest first, at the least total cost
    `sum(overhead + batch rows * its longest)`, each batch at most `max_rows` rows (a larger request alone).
    `sizes` are elements per row (the padded axes' lengths multiplied), `rows` each request's rows; returns
    indices into them. Exact, by dynamic programming over the requests sorted by length."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: the cheapest split of the j shortest requests
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest, batch_rows = sizes[order[j - 1]], 0
        for i in range(j, 0, -1):  # the last batch holds order[i-1:j]
            batch_rows += rows[order[i - 1]]
            if batch_rows > max_rows and i < j:
                break
            cost = best[i - 1] + overhead + batch_rows * longest
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    batches, j = [], n
    while j > 0:
        batches.append(sorted(order[cut[j]:j]))
        j = cut[j]
    return batches[::-1]

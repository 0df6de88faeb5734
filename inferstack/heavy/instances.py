"""Model instances of the heavy container on a CPU: several sessions running batches side by side.

One onnxruntime session spread over every core runs one batch at a time, and its threads wait on one another at
every operator (on a shared or busy CPU, for the slowest); a session per core or two, each running its own batch,
keeps every core on work of its own. On this 2-core machine, minilm at batch 12: one session of 2 threads ran
290-348 texts/s, two sessions of one thread each 422-458 (`bench/peers`, README "Faster serving"). A lone request
on an idle container still runs on a session over every core (`DynamicBatcher`'s `run`), the lowest latency.
On a GPU there is one instance: the device runs one batch at a time anyway.

`batching.instances` in the manifest (or `INFERSTACK_INSTANCES`): a number, or "auto", one instance per 1 to 4
vCPUs, at most 4. Each instance holds its own copy of the model in memory, beside the lone requests' session:
count + 1 copies, so the count is lowered where they would take over half the machine's memory (`fit_memory`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from inferstack import env

if TYPE_CHECKING:
    from pathlib import Path

    from inferstack.inference.session import Entry, Predictor

MAX_AUTO_INSTANCES = 4


def plan(setting: int | str, *, cuda: bool, vcpus: int) -> tuple[int, int]:
    """How many instances, and intra-op threads each."""
    if cuda:
        return 1, vcpus
    wanted = str(os.environ.get(env.HEAVY_INSTANCES) or setting).strip().lower()
    count = min(MAX_AUTO_INSTANCES, vcpus) if wanted == "auto" else int(wanted) if wanted.isdigit() else 0
    if count < 1:
        raise ValueError(f"{env.HEAVY_INSTANCES} / batching.instances: expected a whole number from 1, or 'auto'; "
                         f"got {wanted!r}")
    return count, max(1, vcpus // count)


def fit_memory(count: int, model_bytes: int, *, total_bytes: int | None = None) -> int:
    """At most as many instances as keep every copy of the model (the instances' and the lone requests' session,
    each about 1.5x the file once loaded) within half the machine's memory; 1 (no extra copy) at worst."""
    if total_bytes is None:
        total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    copies = int(total_bytes * 0.5 // max(1, int(model_bytes * 1.5)))
    return max(1, min(count, copies - 1))


def load_instances(entry: Entry, root: Path, count: int, threads: int, providers: list[str]) -> list[Predictor]:
    """`count` more sessions of the model, `threads` each, warmed up (none when one instance is enough: the
    batches then run on the container's own predictor)."""
    from inferstack.inference.session import Predictor

    if count <= 1:
        return []
    return [Predictor.load(entry, root, providers=providers, spin=False, threads=threads) for _ in range(count)]

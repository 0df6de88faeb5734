"""Model instances of the heavy container on a CPU: several sessions running batches side by side.

One onnxruntime session spread over every core runs one batch at a time, and its threads wait on one another at
every operator (on a shared or busy CPU, for the slowest); a session per core or two, each running its own batch,
keeps every core on work of its own. On this 2-core machine, minilm at batch 12: one session of 2 threads ran
290-348 texts/s, two sessions of one thread each 422-458 (`bench/peers`, README "Faster serving"). A lone request
on an idle container still runs on a session over every core (`DynamicBatcher`'s `run`), the lowest latency.
On a GPU there is one instance: the device runs one batch at a time anyway.

`batching.instances` in the manifest (or `INFERSTACK_INSTANCES`): a number, or "auto", one instance per 1 to 4
vCPUs, at most 4. Each instance holds its own copy of the model in memory.
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
    wanted = os.environ.get(env.HEAVY_INSTANCES) or setting
    count = min(MAX_AUTO_INSTANCES, vcpus) if wanted == "auto" else int(wanted)
    if count < 1:
        raise ValueError(f"{env.HEAVY_INSTANCES} / batching.instances must be at least 1 or 'auto', not {wanted!r}")
    return count, max(1, vcpus // count)


def load_instances(entry: Entry, root: Path, count: int, threads: int, providers: list[str]) -> list[Predictor]:
    """`count` more sessions of the model, `threads` each, warmed up (none when one instance is enough: the
    batches then run on the container's own predictor)."""
    from inferstack.inference.session import Predictor

    if count <= 1:
        return []
    return [Predictor.load(entry, root, providers=providers, spin=False, threads=threads) for _ in range(count)]

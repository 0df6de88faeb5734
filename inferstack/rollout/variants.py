"""A/B variants served in one function: each request goes to one variant, chosen by the manifest's weights.

Why in-process, and not weighted alias routing or a function per variant behind a router. A Lambda alias weighs
two *versions* of one function, and a version snapshots the function's code at publication: one CloudFormation
deployment can hold only one code bundle per function, so two model files with fixed weights cannot both be
versions of it (the alias's weights are what CodeDeploy moves during a rollout anyway). A function per variant
needs a router in front (API Gateway's only weighted split is the stage canary, one per stage): another
invocation per request, paid and waited for. A light model is small, so one function loads every variant at init
(the same cold start per variant, memory for each) and picks per request; provisioned concurrency, the job
worker and the local twin all serve the variants through this very code. Every answer names the variant
(`x-model-variant`) and its version (`x-model-version`), and the per-model metrics count each version apart.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from inferstack.inference.session import Entry, Predictor
from inferstack.inference.spec import ModelEntry

if TYPE_CHECKING:
    from inferstack.catalog import CatalogEntry  # pydantic: not on the predict function's lean path


@dataclass(frozen=True)
class Arm:
    name: str | None
    predictor: Predictor

    @property
    def version(self) -> str:
        return self.predictor.version


class Variants:
    """The arms of a model (one, without variants) and a weighted pick per request."""

    def __init__(self, arms: list[tuple[Arm, int]], rand: Callable[[], float] = random.random) -> None:
        self.arms = [a for a, _ in arms]
        self.bounds = list(accumulate(w for _, w in arms))
        self.rand = rand

    @classmethod
    def load(cls, entry: ModelEntry | CatalogEntry, root: Path) -> Variants:
        """Every variant of the entry (the predict function's `ModelEntry` or the catalog's own), or the entry
        itself where it has none."""
        if not entry.variants:
            return cls([(Arm(None, Predictor.load(entry, root)), 100)])
        arms = []
        for v in entry.variants:
            name, weight, version, artifact = v if isinstance(v, tuple) else (v.name, v.weight, v.version, v.artifact)
            variant: Entry = replace(entry, version=version, artifact=artifact, variants=()) \
                if isinstance(entry, ModelEntry) else entry.model_copy(update={"version": version, "artifact": artifact,
                                                                               "variants": None})
            arms.append((Arm(name, Predictor.load(variant, root)), weight))
        return cls(arms)

    def pick(self) -> Arm:
        return self.arms[self.pick_index()]

    def pick_index(self) -> int:
        if len(self.arms) == 1:
            return 0
        return bisect.bisect_right(self.bounds, self.rand() * self.bounds[-1])

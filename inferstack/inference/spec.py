"""Model signatures and catalog entries as plain dataclasses: the predict function's cold path reads them
without pydantic (which the API function's catalog models use)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from inferstack import env


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: `shape` holds ints for fixed dims, strings for symbolic ones
    (`"N"`), and None for dims the graph leaves unnamed."""

    name: str
    dtype: str
    shape: list[int | str | None]

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        return f"{self.dtype}, shape {self.shape_text()}"


@dataclass(frozen=True)
class ModelEntry:
    """What a function needs to load and serve one model."""

    name: str
    tier: str
    version: str
    artifact: str
    allow_non_finite: bool = False
    #: The model's handler module, relative to the model root (None: the tensor contract).
    handler: str | None = None
    #: The onnxruntime optimization level the artifact was saved at ("none", "basic", "extended").
    graph_optimized: str = "none"
    #: Inputs padded to stack requests of different lengths (`inference.ragged`), or None.
    pad: dict[str, int | float] | None = None
    #: A/B variants: (name, weight in percent, version, artifact) each.
    variants: tuple[tuple[str, int, str, str], ...] = ()


def load_model_entry(name: str | None = None, path: str | None = None) -> tuple[ModelEntry, Path]:
    """The catalog entry of `name` (default `$INFERSTACK_MODEL`) and the directory its artifact is relative to."""
    name = name or os.environ[env.MODEL_NAME]
    where = Path(path or os.environ.get(env.CATALOG_PATH) or "catalog.json")
    for raw in json.loads(where.read_bytes())["models"]:
        if raw["name"] == name:
            entry = ModelEntry(name=raw["name"], tier=raw["tier"], version=raw["version"], artifact=raw["artifact"],
                               allow_non_finite=bool(raw.get("allow_non_finite", False)),
                               handler=raw.get("handler"), graph_optimized=raw.get("graph_optimized", "none"),
                               pad=raw.get("pad"),
                               variants=tuple((v["name"], int(v["weight"]), v["version"], v["artifact"])
                                              for v in raw.get("variants") or []))
            return entry, Path(os.environ.get(env.MODEL_ROOT) or where.parent)
    raise LookupError(f"model {name!r} is not in the catalog {where}")

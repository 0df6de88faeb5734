"""The model catalog: names, versions and signatures of every model in a deployment.

It is computed at build time (by `infra`, from the ONNX graphs) and bundled with every function as JSON, so
that the API function can list models without importing onnxruntime or numpy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from inferstack import env
from inferstack.inference.spec import TensorSpec

__all__ = ["CascadeInfo", "Catalog", "CatalogEntry", "ModelInfo", "TensorSpec", "load_catalog"]


class ModelInfo(BaseModel):
    """What `GET /v1/models/{name}` returns."""

    name: str
    tier: Literal["light", "heavy"]
    version: str
    inputs: list[TensorSpec] = Field(description="The ONNX graph's inputs (for a model with a handler: what its "
                                     "handler feeds the graph; requests follow request_schema)")
    outputs: list[TensorSpec]
    request_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the predict body's `inputs`, for a model with a handler")
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the predict response's `outputs`, for a model with a handler")
    variants: list[VariantInfo] | None = Field(
        default=None, description="A/B variants: each request is answered by one, by weight; its version is the "
        "answer's x-model-version")


class VariantInfo(BaseModel):
    """One arm of an A/B test: its name, its share of the traffic (percent) and its version."""

    name: str
    weight: int
    version: str


class VariantEntry(VariantInfo):
    """... and its model file."""

    artifact: str


class CatalogEntry(ModelInfo):
    #: The model file, relative to the catalog's model root.
    artifact: str
    allow_non_finite: bool = False
    #: The model's handler module, relative to the catalog's model root.
    handler: str | None = None
    #: The onnxruntime optimization level the artifact was saved at (`optimize.graph` in the manifest).
    graph_optimized: Literal["none", "basic", "extended"] = "none"
    #: Inputs padded to stack requests of different lengths (`pad` in the manifest, `inference.ragged`).
    pad: dict[str, int | float] | None = None
    #: A/B variants (`variants` in the manifest): each request goes to one, by weight; `artifact` is the first's.
    variants: list[VariantEntry] | None = None  # type: ignore[assignment]

    def public(self) -> ModelInfo:
        return ModelInfo.model_validate(self.model_dump(include=set(ModelInfo.model_fields)))


class CascadeInfo(BaseModel):
    """What `GET /v1/cascades/{name}` returns."""

    name: str
    stages: list[str] = Field(description="Models in the order rows escalate through them")
    accept_output: str = Field(description="The output whose top value is a row's confidence")
    min_confidence: float | None = Field(default=None, description="Rows below it go to the next stage")
    rule: str | None = Field(default=None, description="The custom acceptance rule's file (relative to the model "
                             "root), where the manifest gives one instead of min_confidence")
    budget_ms: int | None = Field(default=None, description="Default latency budget (x-latency-budget-ms "
                                  "overrides)")
    inputs: list[TensorSpec] = Field(description="The input signature every stage shares")
    outputs: list[TensorSpec] = Field(description="The outputs every stage has, answered row by row")


class Catalog(BaseModel):
    models: list[CatalogEntry]
    cascades: list[CascadeInfo] = Field(default_factory=list)

    def cascade(self, name: str) -> CascadeInfo | None:
        return next((c for c in self.cascades if c.name == name), None)

    def get(self, name: str) -> CatalogEntry | None:
        return next((m for m in self.models if m.name == name), None)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


def load_catalog(path: str | Path | None = None) -> tuple[Catalog, Path]:
    """Load the catalog named by `$INFERSTACK_CATALOG`; returns it with the directory models are found in."""
    where = Path(path or os.environ.get(env.CATALOG_PATH) or "catalog.json")
    catalog = Catalog.model_validate_json(where.read_bytes())
    root = Path(os.environ.get(env.MODEL_ROOT) or where.parent)
    return catalog, root

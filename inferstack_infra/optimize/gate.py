"""The accuracy gate: how far an optimized model's answers drift from the float model's on the same inputs.

Both models answer through the whole predict path (`Predictor.predict`: the handler's pre- and post-processing
where there is one), so what is compared is what a client gets: sentence embeddings, probabilities, labels.
Per output, over all rows of all reference requests:

- floating-point values: the cosine similarity of each row to the float model's row; drift = 1 - the mean;
- integers, booleans and strings (labels): the share of rows that differ; drift = that share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inferstack.inference.session import Predictor
from inferstack.inference.spec import ModelEntry
from inferstack_infra.optimize.exceptions import OptimizationError


@dataclass(frozen=True)
class Drift:
    output: str
    kind: Literal["cosine", "agreement"]
    #: mean cosine similarity, or the share of rows that agree
    mean: float
    #: the lowest cosine similarity of any row, or the same share
    worst: float
    rows: int

    @property
    def drift(self) -> float:
        return 1.0 - self.mean

    def describe(self) -> str:
        if self.kind == "cosine":
            return (f"{self.output}: mean cosine {self.mean:.4f} (worst row {self.worst:.4f}) over {self.rows} rows")
        return f"{self.output}: {self.mean:.1%} of {self.rows} rows agree"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift}


def _rows(values: Sequence[Any]) -> np.ndarray:
    """One output of every request, as rows: the leading axis of each request's value is its rows."""
    arrays = [np.asarray(v) for v in values]
    arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
    return np.concatenate([a.reshape(a.shape[0], -1) for a in arrays])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    same = np.all(a == b, axis=1)  # zero rows, and identical rows, agree fully
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(same, 1.0, np.where(norms > 0, dots / np.where(norms > 0, norms, 1), 0.0))


def compare(reference: Sequence[dict[str, Any]], candidate: Sequence[dict[str, Any]]) -> list[Drift]:
    """The drift of each output between two models' `outputs` for the same requests, in order."""
    drifts = []
    for name in reference[0]:
        ref = _rows([r[name] for r in reference])
        got = _rows([c[name] for c in candidate])
        if ref.shape != got.shape:
            raise OptimizationError(f"output {name}: the optimized model answers shape {got.shape}, the float model "
                                    f"{ref.shape}")
        if np.issubdtype(ref.dtype, np.floating) or np.issubdtype(got.dtype, np.floating):
            cos = _cosine(ref, got)
            drifts.append(Drift(name, "cosine", float(cos.mean()), float(cos.min()), len(cos)))
        else:
            agree = float(np.all(ref == got, axis=1).mean())
            drifts.append(Drift(name, "agreement", agree, agree, len(ref)))
    return drifts


def reference_inputs(path: Path | None, example: Any) -> list[Any]:
    """The gate's inputs: each item of the reference file's JSON list (request `inputs`), and the handler's
    example."""
    inputs: list[Any] = []
    if path is not None:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OptimizationError(f"optimize.reference {path}: cannot read it as JSON: {exc}") from None
        if not isinstance(loaded, list) or not loaded:
            raise OptimizationError(f"optimize.reference {path}: must hold a JSON list of request inputs (what a "
                                    "predict body's `inputs` holds), one per request")
        inputs += loaded
    if example is not None:
        inputs.append(example)
    if not inputs:
        raise OptimizationError("optimize needs inputs to check accuracy on: set optimize.reference to a JSON file "
                                "listing request inputs (or give the handler's Request an example)")
    return inputs


def load_predictor(model_file: Path, handler: Path | None, name: str) -> Predictor:
    entry = ModelEntry(name=name, tier="light", version="build", artifact=str(model_file.resolve()),
                       handler=str(handler.resolve()) if handler else None)
    return Predictor.load(entry, Path("/"), warm_up=False)


def answers(predictor: Predictor, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for i, raw in enumerate(inputs):
        try:
            out.append(predictor.predict(raw))
        except Exception as exc:
            raise OptimizationError(f"reference input {i} fails on the model {predictor.name}: {exc}") from exc
    return out

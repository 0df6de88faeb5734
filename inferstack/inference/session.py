"""Load an ONNX model once, read its signature, and run validated batches.

This is the only module that imports onnxruntime.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from inferstack import env
from inferstack.inference.exceptions import ModelLoadError
from inferstack.inference.spec import TensorSpec
from inferstack.inference.validation import ORT_TYPES, validate_inputs
from inferstack.observability import logger

#: Lambda allots one vCPU per 1,769 MB of memory, up to 6.
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MAX_VCPUS = 6


def available_vcpus() -> int:
    """vCPUs this process may use: derived from the memory size on Lambda, the CPU affinity elsewhere."""
    if override := os.environ.get(env.INTRA_OP_THREADS):
        return max(1, int(override))
    memory = os.environ.get(env.LAMBDA_MEMORY_MB)
    if memory:
        return max(1, min(LAMBDA_MAX_VCPUS, math.ceil(int(memory) / LAMBDA_MB_PER_VCPU)))
    return max(1, len(os.sched_getaffinity(0)))


def create_session(path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
                   spin: bool | None = None) -> ort.InferenceSession:
    """`spin`: let idle intra-op threads busy-wait for work (lowest latency for back-to-back runs, but they
    take CPU from everything else in the process). Default: only when there is more than one thread."""
    threads = threads or available_vcpus()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not (threads > 1 if spin is None else spin):
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(f"cannot load ONNX model {path}: {exc}") from exc


def _spec(arg: Any) -> TensorSpec:
    dtype = ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ModelLoadError(f"{arg.name}: unsupported ONNX type {arg.type} (only tensors are served)")
    shape = [d if isinstance(d, int | str) or d is None else None for d in (arg.shape or [])]
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape)


def read_signature(session: ort.InferenceSession) -> tuple[list[TensorSpec], list[TensorSpec]]:
    return [_spec(a) for a in session.get_inputs()], [_spec(a) for a in session.get_outputs()]


def _example(spec: TensorSpec) -> np.ndarray:
    shape = [d if isinstance(d, int) and d >= 0 else 1 for d in spec.shape]
    if spec.dtype == "str":
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=np.dtype(spec.dtype))


class Entry(Protocol):
    """What a predictor reads of its catalog entry (`inference.spec.ModelEntry` or `catalog.CatalogEntry`)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def artifact(self) -> str: ...
    @property
    def allow_non_finite(self) -> bool: ...


class Predictor:
    """One loaded model: validates request inputs and runs them as one batch."""

    def __init__(self, entry: Entry, session: ort.InferenceSession) -> None:
        self.entry = entry
        self.session = session
        self.inputs, self.outputs = read_signature(session)
        self._output_names = [o.name for o in self.outputs]

    @classmethod
    def load(cls, entry: Entry, root: Path, *, warm_up: bool = True) -> Predictor:
        predictor = cls(entry, create_session(root / entry.artifact))
        if warm_up:
            predictor.warm_up()
        return predictor

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def version(self) -> str:
        return self.entry.version

    def warm_up(self) -> None:
        """Run once on a batch of one so that the first real request pays no lazy initialisation. Best effort:
        a model may reject the made-up input (data-dependent shapes); it then warms up on its first request."""
        try:
            self.run({s.name: _example(s) for s in self.inputs})
        except Exception as exc:  # onnxruntime's errors are untyped
            logger.warning("warm-up skipped: the model rejected a zero-filled batch of one",
                           extra={"model": self.entry.name, "error": str(exc)[:300]})

    def validate(self, raw_inputs: Any) -> dict[str, np.ndarray]:
        return validate_inputs(raw_inputs, self.inputs, allow_non_finite=self.entry.allow_non_finite)

    def run(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self._output_names, arrays)
        return dict(zip(self._output_names, results, strict=True))

    def predict(self, raw_inputs: Any) -> dict[str, Any]:
        """Validate, run, and return the outputs as nested lists. They may hold NaN or infinities (the
        encoder of `api.predict.predict_body` turns those into null); `to_jsonable` does it eagerly."""
        return {name: np.asarray(value).tolist() for name, value in self.run(self.validate(raw_inputs)).items()}

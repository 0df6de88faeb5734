"""Load an ONNX model once, read its signature, and run validated batches.

This is the only module that imports onnxruntime.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnxruntime as ort

from inferstack import env
from inferstack.inference.exceptions import HandlerError, ModelLoadError
from inferstack.inference.ragged import Padding
from inferstack.inference.spec import TensorSpec
from inferstack.inference.validation import ORT_TYPES, check_tensors, validate_inputs
from inferstack.observability import logger

if TYPE_CHECKING:
    from inferstack.inference.handlers import ModelHandler

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
                   spin: bool | None = None, graph_optimized: str = "none") -> ort.InferenceSession:
    """`spin`: let idle intra-op threads busy-wait for work (lowest latency for back-to-back runs, but they
    take CPU from everything else in the process). Default: only when there is more than one thread.
    `graph_optimized`: the level the graph was saved at by the build (`optimize.graph`); a graph saved at
    "extended" is loaded with only the basic passes (they find nothing left to do and cost little), which
    spares the cold start the extended ones."""
    threads = threads or available_vcpus()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC \
        if graph_optimized == "extended" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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
    @property
    def handler(self) -> str | None: ...
    @property
    def graph_optimized(self) -> str: ...


Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Prepared:
    """A request made ready to run: its (validated) body and the tensors it becomes."""

    body: Any
    arrays: Arrays

    @property
    def rows(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0]) if self.arrays else 0


class Predictor:
    """One loaded model: turns request inputs into tensors (validating them, or through the model's handler),
    runs them as one batch, and turns the outputs into the response."""

    def __init__(self, entry: Entry, session: ort.InferenceSession, handler: ModelHandler | None = None) -> None:
        self.entry = entry
        self.session = session
        self.handler = handler
        self.inputs, self.outputs = read_signature(session)
        self._output_names = [o.name for o in self.outputs]
        pad = getattr(entry, "pad", None)
        #: How requests of different lengths stack (the manifest's `pad`), or None: they stack only alike.
        self.padding = Padding.from_signature(pad, self.inputs, self.outputs) if pad else None

    @classmethod
    def load(cls, entry: Entry, root: Path, *, warm_up: bool = True, providers: list[str] | None = None,
             spin: bool | None = None, threads: int | None = None) -> Predictor:
        handler = None
        if entry.handler:
            from inferstack.inference.handlers import load_handler

            handler = load_handler(root / entry.handler)
        session = create_session(root / entry.artifact, providers=providers, spin=spin, threads=threads,
                                 graph_optimized=entry.graph_optimized)
        predictor = cls(entry, session, handler)
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
        """Run once on a batch of one (through the handler, on its `Request` example, where there is one) so
        that the first real request pays no lazy initialisation. Best effort: a model may reject the made-up
        input (data-dependent shapes); it then warms up on its first request."""
        example = self.handler.example() if self.handler else None
        try:
            if example is not None:
                self.predict(example)
            else:
                self.run({s.name: _example(s) for s in self.inputs})
        except Exception as exc:  # onnxruntime's errors are untyped
            logger.warning("warm-up skipped: the model rejected its warm-up input",
                           extra={"model": self.entry.name, "error": str(exc)[:300]})

    def validate(self, raw_inputs: Any) -> Arrays:
        return validate_inputs(raw_inputs, self.inputs, allow_non_finite=self.entry.allow_non_finite)

    def prepare(self, raw_inputs: Any) -> Prepared:
        """A request's `inputs` as tensors. Raises `InputValidationError` when the input is at fault (a 422),
        `HandlerError` when the model's handler is."""
        if self.handler is None:
            return Prepared(raw_inputs, self.validate(raw_inputs))
        body = self.handler.parse(raw_inputs)
        arrays, problems = check_tensors(self.handler.preprocess(body), self.inputs)
        if problems:
            raise HandlerError(f"{self.handler.path.name}: preprocess returned tensors that do not match the "
                               f"model's signature: {'; '.join(problems)}")
        if len({a.shape[:1] for a in arrays.values()}) != 1 or any(a.ndim == 0 for a in arrays.values()):
            raise HandlerError(f"{self.handler.path.name}: preprocess must return tensors sharing a leading "
                               "(batch) axis")
        return Prepared(body, arrays)

    def respond(self, prepared: Prepared, outputs: Arrays) -> dict[str, Any]:
        """The response's `outputs` for a prepared request and its rows of the model's outputs: through the
        handler's `postprocess`, or as nested lists. They may hold NaN or infinities (the encoder of
        `api.predict.predict_body` turns those into null); `to_jsonable` does it eagerly."""
        if self.handler is None:
            return {name: np.asarray(value).tolist() for name, value in outputs.items()}
        result = self.handler.postprocess(outputs, prepared.body, prepared.arrays)
        if not isinstance(result, dict):
            raise HandlerError(f"{self.handler.path.name}: postprocess must return an object (a dict or a "
                               f"pydantic model), not {type(result).__name__}")
        return result

    def run(self, arrays: Arrays) -> Arrays:
        results = self.session.run(self._output_names, arrays)
        return dict(zip(self._output_names, results, strict=True))

    def predict(self, raw_inputs: Any) -> dict[str, Any]:
        """Prepare, run and respond: the whole request in one call."""
        prepared = self.prepare(raw_inputs)
        return self.respond(prepared, self.run(prepared.arrays))

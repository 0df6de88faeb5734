"""Why a model's optimized artifact could not be built."""

from __future__ import annotations


class OptimizationError(RuntimeError):
    """The optimization could not run: no reference inputs, a reference file that is not a JSON list, a model
    onnxruntime's tools cannot process."""


class AccuracyGateError(OptimizationError):
    """The optimized model drifted past `max_drift` from the float model: the build is refused."""

"""Build-time model optimization: the artifact each function, worker and model archive ships.

`artifact(manifest, model)` is the model file to package: the manifest's own file, or, for a model with
`optimize = {...}`, the optimized one built (and cached) under `build/optimized/` once its accuracy gate passed.
"""

from inferstack_infra.optimize.build import OptimizationReport, artifact, optimization, optimize_model
from inferstack_infra.optimize.exceptions import AccuracyGateError, OptimizationError
from inferstack_infra.optimize.gate import Drift, compare

__all__ = ["AccuracyGateError", "Drift", "OptimizationError", "OptimizationReport", "artifact", "compare",
           "optimization", "optimize_model"]

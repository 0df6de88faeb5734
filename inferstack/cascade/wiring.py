"""A cascade's runner, built once per execution environment from `$INFERSTACK_CASCADE` and the catalog: its
light stages loaded in this process, a circuit breaker around each heavy stage's endpoint. The cascade's
predict function and its job worker both build it here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.config import CascadeRuntime, StageRuntime
from inferstack.cascade.guard import GuardedPredictor
from inferstack.cascade.rules import load_rule
from inferstack.cascade.runner import CascadeRunner, EndpointStage, LocalStage, Stage
from inferstack.catalog import Catalog


def _stage(spec: StageRuntime, catalog: Catalog, model_root: Path, client: Any) -> Stage:
    entry = catalog.get(spec.model)
    if entry is None:
        raise RuntimeError(f"stage {spec.model!r} is not in the catalog")
    if spec.tier == "light":
        from inferstack.inference.session import Predictor

        return LocalStage(Predictor.load(entry, model_root))
    from inferstack.heavy.endpoint import EndpointPredictor

    assert spec.endpoint is not None
    endpoint = EndpointPredictor(entry, spec.endpoint, client, component=spec.component)
    return EndpointStage(entry.name, entry.version, GuardedPredictor(endpoint, CircuitBreaker(entry.name,
                                                                                              spec.circuit)))


def build_runner(config: CascadeRuntime, catalog: Catalog, model_root: Path, client: Any = None
                 ) -> tuple[CascadeRunner, Any]:
    """The runner and the first stage's predictor (it validates every request: the stages share its inputs)."""
    info = catalog.cascade(config.name)
    if info is None:
        raise RuntimeError(f"cascade {config.name!r} is not in the catalog")
    stages = [_stage(s, catalog, model_root, client) for s in config.stages]
    first = stages[0]
    if not isinstance(first, LocalStage):
        raise RuntimeError(f"cascade {config.name!r}: its first stage must be a light model")
    rule = load_rule(model_root / info.rule) if info.rule else None
    return CascadeRunner(config.name, stages, config.accept, [o.name for o in info.outputs], rule=rule), \
        first.predictor

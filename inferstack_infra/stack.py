"""The stack: composes the tiers of one manifest. Each construct owns its resources."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from inferstack.manifest import Manifest, resource_id
from inferstack.topology import API_FUNCTION, functions, routes, uses_cache_table
from inferstack_infra.catalog import build_catalog
from inferstack_infra.constructs.api import RestApiTier
from inferstack_infra.constructs.batches import BatchTier
from inferstack_infra.constructs.cache import CacheTable
from inferstack_infra.constructs.function import RUNTIME, InferenceFunction
from inferstack_infra.constructs.heavy import HeavyTier
from inferstack_infra.constructs.jobs import JobTier
from inferstack_infra.constructs.monitoring import Monitoring
from inferstack_infra.constructs.rollout import Rollouts
from inferstack_infra.packaging import (
    Layer,
    build_layer,
    function_layers,
    model_tarball,
    stage_function,
    stage_heavy_model,
)
from inferstack_infra.paths import LAYERS_DIR

CATALOG_IN_BUNDLE = "/var/task/catalog.json"


class InferenceStack(Stack):
    def __init__(self, scope: Construct, id: str, *, manifest: Manifest, **kwargs: Any) -> None:
        super().__init__(scope, id, description=f"inferstack deployment {manifest.name}", **kwargs)
        catalog = build_catalog(manifest)
        self.heavy = HeavyTier(self, "Heavy", manifest=manifest, archives={
            m.name: model_tarball(stage_heavy_model(m, manifest, catalog)) for m in manifest.heavy_models},
            variant_archives={m.name: {v.name: model_tarball(stage_heavy_model(m, manifest, catalog, variant=v.name))
                                       for v in m.variants} for m in manifest.heavy_models if m.variants})
        layers: dict[str, lambda_.ILayerVersion] = {}

        def layer(spec: Layer) -> lambda_.ILayerVersion:
            if spec.name not in layers:
                recipe = spec.recipe.resolve()
                roots = (LAYERS_DIR.parent, manifest.root.resolve())
                base = next((d for d in roots if recipe.is_relative_to(d)), recipe.parent.parent)
                source = recipe.relative_to(base)
                layers[spec.name] = lambda_.LayerVersion(
                    self, f"{resource_id(spec.name)}Layer", code=lambda_.Code.from_asset(str(build_layer(spec))),
                    compatible_runtimes=[RUNTIME], compatible_architectures=[lambda_.Architecture.ARM_64],
                    description=f"inferstack {spec.name} dependencies ({source})")
            return layers[spec.name]

        self.jobs = JobTier(self, "Jobs", manifest=manifest)
        self.cache = CacheTable(self, "Cache") if uses_cache_table(manifest) else None
        self.batches = BatchTier(self, "Batches", manifest=manifest)
        self.functions: dict[str, InferenceFunction] = {}
        for spec in functions(manifest):
            model = manifest.model(spec.model) if spec.model else None
            serves_api = spec.serves_route
            environment = spec.environment(CATALOG_IN_BUNDLE, manifest)
            if spec.jobs:
                environment.update(self.jobs.environment)
            if spec.shared_cache and self.cache:
                environment.update(self.cache.environment)
            if spec.kind == "batch":
                environment.update(self.batches.environment)
            self.functions[spec.key] = InferenceFunction(
                self, resource_id(spec.key), spec=spec, code_dir=stage_function(spec, manifest, catalog),
                layers=[layer(n) for n in function_layers(spec, manifest)], environment=environment,
                cold_start=model.cold_start if model and serves_api else None,
                reserved_concurrency=model.reserved_concurrency if model and serves_api else
                manifest.batch_concurrency(model) if model and spec.kind == "batch" else None)
        for f in self.functions.values():
            if f.spec.endpoint and f.spec.model:
                self.heavy.models[f.spec.model].grant_invoke(f.role)
            for model_name in f.spec.invokes:
                self.heavy.models[model_name].grant_invoke(f.role)
        if self.cache:
            self.cache.connect([f for f in self.functions.values() if f.spec.shared_cache])
        self.jobs.connect([f for f in self.functions.values() if f.spec.jobs])
        self.rollouts = Rollouts(self, "Rollouts", manifest=manifest,
                                 versions={e.name: e.version for e in catalog.models}, functions=self.functions,
                                 endpoints=dict(self.heavy.models))
        for f in self.functions.values():
            if f.spec.kind == "batch" and f.spec.model and f.spec.model in self.heavy.models:
                heavy = self.heavy.models[f.spec.model]
                self.batches.add_transform_model(f.spec.model, f, sagemaker_model=heavy.model.attr_model_name,
                                                 role=heavy.role)
            elif f.spec.kind == "batch" and f.spec.model:
                self.batches.add_model(f.spec.model, f)
        self.batches.connect_api(self.functions[API_FUNCTION])

        self.api = RestApiTier(self, "Rest", manifest=manifest, routes=routes(manifest),
                               targets={key: f.alias for key, f in self.functions.items()})
        self.monitoring = Monitoring(
            self, "Monitoring", manifest=manifest, api=self.api, functions=self.functions, jobs=self.jobs,
            heavy=self.heavy, model_alarms={**{m: r.alarms for m, r in self.rollouts.light.items()},
                                            **self.rollouts.heavy_alarms})

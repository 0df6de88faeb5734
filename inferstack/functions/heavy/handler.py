"""Lambda entry point of a heavy model's predict route: a thin proxy to its SageMaker endpoint.

It imports neither onnxruntime nor numpy, unless the model has a `fallback` (a light model it then loads at
import); the container validates inputs and its 4xx answers come back as they are, SageMaker's own errors become
429/502/503/504 problems. A model that scales to zero answers 503 with `Retry-After` while it starts
(`NoCapacityError`). Every call goes through the model's circuit breaker and the request's latency budget
(`inferstack.cascade`); the result cache, where the manifest asks for one, answers repeated inputs without a call.
"""

from __future__ import annotations

import os
from typing import Any

from inferstack import env
from inferstack.api.app import create_app
from inferstack.api.lambda_adapter import lambda_handler
from inferstack.cache.wiring import cache_from_env
from inferstack.cascade.answers import HeavyService
from inferstack.cascade.breaker import CircuitBreaker
from inferstack.cascade.config import GuardRuntime
from inferstack.cascade.guard import GuardedEndpoint, GuardedPredictor
from inferstack.catalog import Catalog, load_catalog
from inferstack.heavy.endpoint import EndpointPredictor

catalog, model_root = load_catalog()
entry = catalog.get(os.environ[env.MODEL_NAME])
if entry is None:
    raise RuntimeError(f"{env.MODEL_NAME}={os.environ[env.MODEL_NAME]!r} is not in the catalog")
predictor = EndpointPredictor(entry, os.environ[env.ENDPOINT_NAME],
                              component=os.environ.get(env.INFERENCE_COMPONENT) or None)
guard = GuardRuntime.from_env()
fallback: Any = None
if guard.fallback:
    from inferstack.inference.session import Predictor

    fallback_entry = catalog.get(guard.fallback)
    assert fallback_entry is not None, f"fallback {guard.fallback!r} is not in the catalog"
    fallback = Predictor.load(fallback_entry, model_root)
breaker = CircuitBreaker(entry.name, guard.circuit)  # /v1 predict and /v2 infer share it
service = HeavyService(entry.name, entry.version, [i.name for i in entry.inputs], GuardedPredictor(predictor, breaker),
                       budget_ms=guard.budget_ms, cache=cache_from_env(entry.name), fallback=fallback)
handler = lambda_handler(create_app(Catalog(models=[entry]), {entry.name: GuardedEndpoint(predictor, breaker)},
                                    answerers={entry.name: service}))

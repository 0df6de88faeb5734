"""The deployment's shape, derived from the manifest: which functions exist and which routes reach them.

The CDK app and the local gateway both build from these lists, so the cloud and `inferstack dev` route
every request the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inferstack import env
from inferstack.api.schemas import PREDICT_BODY_SCHEMA
from inferstack.manifest import Manifest, Throttle

API_FUNCTION = "api"
API_STAGE = "prod"


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: `key` names it in routes, `handler` is its entry point (`module.attr`)."""

    key: str
    handler: str
    description: str
    memory_mb: int
    timeout_s: int
    model: str | None = None
    #: Does the function need the inference layer (onnxruntime, numpy)?
    inference: bool = False

    def environment(self, catalog_path: str, manifest: Manifest) -> dict[str, str]:
        out = {env.CATALOG_PATH: catalog_path, env.MAX_BODY_BYTES: str(manifest.api.max_body_kb * 1024),
               "POWERTOOLS_SERVICE_NAME": "inferstack", "POWERTOOLS_METRICS_NAMESPACE": "inferstack"}
        if self.model:
            out[env.MODEL_NAME] = self.model
        return out


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    api_key_required: bool = True
    body_schema: dict[str, Any] | None = None
    throttle: Throttle | None = None
    params: tuple[str, ...] = field(default=())


def predict_function_key(model: str) -> str:
    return f"predict-{model}"


def functions(manifest: Manifest) -> list[FunctionSpec]:
    out = [FunctionSpec(API_FUNCTION, "functions.api.handler.handler",
                        "inferstack API: health, model catalog, OpenAPI document", memory_mb=512, timeout_s=10)]
    for m in manifest.light_models:
        out.append(FunctionSpec(predict_function_key(m.name), "functions.predict.handler.handler",
                                f"inferstack light model {m.name}", memory_mb=m.memory_mb, timeout_s=m.timeout_s,
                                model=m.name, inference=True))
    return out


def routes(manifest: Manifest) -> list[Route]:
    """Every route of the REST API. Static paths win over `{name}` (as in API Gateway), so each light model
    gets its own `/v1/models/<name>` resources routed to its function; unknown names reach the API function,
    which answers 404."""
    out = [
        Route("GET", "/v1/health", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/openapi.json", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/docs", API_FUNCTION, api_key_required=False),
        Route("GET", "/v1/models", API_FUNCTION),
        Route("GET", "/v1/models/{name}", API_FUNCTION, params=("name",)),
        Route("POST", "/v1/models/{name}/predict", API_FUNCTION, body_schema=PREDICT_BODY_SCHEMA,
              params=("name",)),
    ]
    for m in manifest.light_models:
        out.append(Route("GET", f"/v1/models/{m.name}", API_FUNCTION))
        out.append(Route("POST", f"/v1/models/{m.name}/predict", predict_function_key(m.name),
                         body_schema=PREDICT_BODY_SCHEMA, throttle=m.throttle))
    return out

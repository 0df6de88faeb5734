"""The OpenAPI document: the self-parsed request bodies' schemas, and one predict operation per model with a
handler (its own request and response schemas)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from inferstack.api.problems import PROBLEM_JSON
from inferstack.catalog import ModelInfo


def document_bodies(app: FastAPI, models: list[ModelInfo], bodies: list[type[BaseModel]]) -> None:
    """Put the self-parsed request bodies' schemas (and what they refer to) into the document's components,
    and give each model with a handler its own predict operation, with its request and response schemas."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in bodies:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        if models and "JobRequest" in components:
            components["JobRequest"]["properties"]["model"]["enum"] = [m.name for m in models]
        for info in models:
            if info.request_schema is not None:
                document["paths"][f"/v1/models/{info.name}/predict"] = _handler_operation(info, components)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _component(schema: dict[str, Any], name: str, components: dict[str, Any]) -> dict[str, Any]:
    """Add a handler's JSON schema to the components as `name` (its `$defs` as `name` + def name); returns a
    reference to it."""
    schema = json.loads(json.dumps(schema))
    defs = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = f"#/components/schemas/{name}{ref.removeprefix('#/$defs/')}"
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for key, value in defs.items():
        components[f"{name}{key}"] = rewrite(value)
    components[name] = rewrite(schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _handler_operation(info: ModelInfo, components: dict[str, Any]) -> dict[str, Any]:
    """The predict operation of a model with a handler: `{"inputs": <its Request>}` in,
    `{"model", "version", "outputs": <its Response>}` out."""
    prefix = "".join(part.capitalize() for part in info.name.replace("_", "-").split("-"))
    assert info.request_schema is not None
    inputs = _component(info.request_schema, f"{prefix}Inputs", components)
    outputs = _component(info.response_schema, f"{prefix}Outputs", components) if info.response_schema \
        else {"type": "object"}
    components[f"{prefix}PredictRequest"] = {
        "type": "object", "required": ["inputs"], "additionalProperties": False, "properties": {"inputs": inputs}}
    components[f"{prefix}PredictResponse"] = {
        "type": "object", "required": ["model", "version", "outputs"],
        "properties": {"model": {"type": "string"}, "version": {"type": "string"}, "outputs": outputs}}
    problem = {"$ref": "#/components/schemas/Problem"}
    errors = {str(code): {"description": title, "content": {PROBLEM_JSON: {"schema": problem}}}
              for code, title in ((400, "Malformed JSON"), (403, "Missing or invalid API key"),
                                  (413, "Body too large"), (422, "Inputs do not match the model's request schema"),
                                  (429, "Throttled"), (500, "Internal error"))}
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{prefix}PredictRequest"}}
    example = (info.request_schema.get("examples") or [None])[0]
    if example is not None:
        media["example"] = {"inputs": example}
    body = {"required": True, "content": {"application/json": media}}
    return {"post": {
        "tags": ["models"], "summary": f"Predict with {info.name}", "operationId": f"predict_{prefix.lower()}",
        "description": f"{info.name} has its own request and response schemas (its handler's).",
        "requestBody": body,
        "responses": {"200": {"description": "The model's outputs", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{prefix}PredictResponse"}}}}, **errors},
    }}

"""Checks an embedded-metric-format document against the specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
the JSON schema of its `_aws` member, and the rules a schema cannot say (every dimension and metric named by a
directive is a member of the root node; a metric's value is a number or up to 100 numbers)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object",
        "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "items": {
                "type": "object",
                "required": ["Namespace", "Dimensions", "Metrics"],
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "minItems": 0, "maxItems": 30,
                        "items": {"type": "string", "minLength": 1, "maxLength": 250}}},
                    "Metrics": {"type": "array", "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"],
                        "properties": {"Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                       "Unit": {"type": "string"}}}},
                },
            }},
        },
    }},
}


def emf_documents(text: str) -> list[dict[str, Any]]:
    """The EMF documents among log lines (other lines are left out)."""
    docs = []
    for raw in text.splitlines():
        line = raw.split(" | ", 1)[-1].strip()  # a line of `inferstack dev`'s log carries its part's name first
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def check_emf(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCHEMA)
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dims in directive["Dimensions"]:
            for dim in dims:
                assert isinstance(doc.get(dim), str) and doc[dim], f"dimension {dim} is not a string member"
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100, f"{metric['Name']}: {len(values)} values"
            assert all(isinstance(v, (int, float)) for v in values), f"{metric['Name']} is not numeric: {value}"


def metric_values(docs: list[dict[str, Any]], name: str, **dims: str) -> list[float]:
    """Every value of a metric across documents whose dimension members match `dims`."""
    out: list[float] = []
    for doc in docs:
        if all(doc.get(k) == v for k, v in dims.items()) and name in doc:
            value = doc[name]
            out.extend(value if isinstance(value, list) else [value])
    return out

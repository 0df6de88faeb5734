"""Observability, created once per process and shared by every module: the Powertools logger, per-model
metrics in CloudWatch's embedded metric format (`metrics`), and the trace ID of the current request
(`tracing`)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from inferstack.observability.emf import NAMESPACE, SERVICE, ModelMetrics, registry
from inferstack.observability.tracing import trace_id

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

__all__ = ["NAMESPACE", "SERVICE", "ModelMetrics", "logger", "metrics", "registry", "trace_id"]

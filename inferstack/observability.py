"""Powertools logger and metrics, created once per process and shared by every module."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "inferstack"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="inferstack", service=SERVICE)

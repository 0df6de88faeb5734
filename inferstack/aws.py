"""The one object through which inferstack talks to AWS; tests and `inferstack dev` hand it other endpoints
(boto3 honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`), never patch it."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10)
#: Below API Gateway's 29 s integration timeout, so that a slow endpoint becomes our 504, not the gateway's.
ENDPOINT_READ_TIMEOUT_S = 25
_ENDPOINT_CONFIG = Config(read_timeout=ENDPOINT_READ_TIMEOUT_S, connect_timeout=3,
                          retries={"mode": "standard", "max_attempts": 2})


class AwsClients:
    """boto3 clients, created on first use (each costs tens of milliseconds at cold start)."""

    def __init__(self, session: boto3.session.Session | None = None, **client_kwargs: Any) -> None:
        self._session = session or boto3.session.Session()
        self._kwargs = {"config": _CONFIG, **client_kwargs}

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", **self._kwargs)

    @cached_property
    def sqs(self) -> SQSClient:
        return self._session.client("sqs", **self._kwargs)

    @cached_property
    def s3(self) -> S3Client:
        return self._session.client("s3", **self._kwargs)

    @cached_property
    def secrets(self) -> SecretsManagerClient:
        return self._session.client("secretsmanager", **self._kwargs)

    @cached_property
    def sagemaker_runtime(self) -> SageMakerRuntimeClient:
        return self._session.client("sagemaker-runtime", **{**self._kwargs, "config": _ENDPOINT_CONFIG})

    @cached_property
    def sagemaker(self) -> Any:
        """SageMaker's control plane (untyped: boto3-stubs' sagemaker extra is not installed): StopTransformJob."""
        return self._session.client("sagemaker", **self._kwargs)

    @cached_property
    def stepfunctions(self) -> Any:
        """Step Functions (untyped: boto3-stubs' stepfunctions extra is not installed)."""
        return self._session.client("stepfunctions", **self._kwargs)

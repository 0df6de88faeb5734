"""Calling a heavy model's SageMaker endpoint, with SageMaker's errors mapped to clear HTTP answers.

`EndpointPredictor.predict` has the same contract as the in-process `Predictor.predict`, so the predict app
and the job worker serve a heavy model through the same code as a light one. Validation happens in the
container (it has the model's signature); its 4xx answers come back as they are.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from inferstack import env
from inferstack.api import problems
from inferstack.api.problems import ProblemType
from inferstack.aws import AwsClients
from inferstack.catalog import CatalogEntry
from inferstack.heavy.exceptions import EndpointError, NoCapacityError
from inferstack.observability import logger
from inferstack.protocol.codec import BINARY_CONTENT_TYPE, HEADER_LENGTH
from inferstack.protocol.sagemaker import V2_CONTENT_TYPE, header_size, v2_content_type
from inferstack.rollout import MODEL_VERSION_HEADER, answered_version

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

#: `Retry-After` while a model scales out from zero, unless the environment says otherwise: SageMaker takes
#: minutes to bring up a GPU instance, so a client polling once a minute loses little.
SCALE_OUT_RETRY_AFTER_S = 60


def scale_out_retry_after() -> int:
    return int(os.environ.get(env.SCALE_OUT_RETRY_AFTER_S) or SCALE_OUT_RETRY_AFTER_S)


def _is_no_capacity(code: str, message: str) -> bool:
    """SageMaker's answer to an invocation of an inference component with no copy running: `ValidationError`,
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress
    ..."."""
    return code == "ValidationError" and "no capacity" in message.lower()


def _from_client_error(exc: ClientError) -> EndpointError:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    if _is_no_capacity(code, message):
        return NoCapacityError("The model was scaled to zero while idle and is starting; retry after the "
                               "Retry-After delay", retry_after=scale_out_retry_after())
    if code == "ModelError":
        details: dict[str, Any] = {**error, **exc.response}  # botocore puts the members at the top level
        status = int(details.get("OriginalStatusCode") or 0)
        original_message = str(details.get("OriginalMessage") or "")
        if 400 <= status < 500:
            try:
                body = json.loads(original_message)
                problem = ProblemType(str(body.get("type", "")).removeprefix(problems.TYPE_PREFIX) or "invalid-input",
                                      status, str(body.get("title", "Invalid request")))
                extra = {k: v for k, v in body.items() if k not in {"type", "title", "status", "detail"}}
                return EndpointError(problem, str(body.get("detail", original_message)), **extra)
            except (ValueError, AttributeError):  # not the container's problem+json: SageMaker's own text names
                # the account and the endpoint's log group; the client gets the status, the log the text
                logger.warning("the model's endpoint refused a request", extra={"code": code, "error": message})
                return EndpointError(problems.INVALID_REQUEST, "The model refused this request", status=status)
        if "timed out" in message.lower():
            return EndpointError(problems.GATEWAY_TIMEOUT, "The model did not answer in time")
        try:  # the container names the version that failed (a blue/green shift runs two)
            failed = json.loads(original_message).get("model_version")
        except (ValueError, AttributeError):
            failed = None
        failure = EndpointError(problems.BAD_GATEWAY, "The model failed on this request; its log has the details")
        if isinstance(failed, str):
            failure.extensions["model_version"] = failed
        return failure
    if code in {"ThrottlingException", "ModelNotReadyException"} or exc.response.get(
            "ResponseMetadata", {}).get("HTTPStatusCode") == 429:
        return EndpointError(problems.THROTTLED, "The model's endpoint is busy; retry shortly", retry_after=1)
    if code in {"ServiceUnavailable", "InternalDependencyException"}:
        return EndpointError(problems.UNAVAILABLE, "The model's endpoint is unavailable; retry shortly", retry_after=5)
    # Anything else (AccessDenied, a missing endpoint, a validation error): its message names roles, accounts and
    # resources, so it goes to the log, and the client learns the code only.
    logger.error("the model's endpoint failed", extra={"code": code, "error": message})
    return EndpointError(problems.BAD_GATEWAY, f"The model's endpoint answered {code or 'an error'}; the service's "
                         "log has the details")


class EndpointPredictor:
    """Invokes a heavy model's endpoint; `component` names its inference component when it scales to zero."""

    def __init__(self, entry: CatalogEntry, endpoint: str, client: SageMakerRuntimeClient | None = None, *,
                 component: str | None = None) -> None:
        self.entry, self.endpoint, self.component = entry, endpoint, component
        self.client = client or AwsClients().sagemaker_runtime

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def version(self) -> str:
        """The deployed version (an answer names the one that computed it: `predict_versioned`)."""
        return self.entry.version

    def _invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str, str]:
        """The answer, its content type and the version that answered (the container says it in SageMaker's
        custom attributes: during a blue/green deployment either fleet may answer)."""
        target = {"InferenceComponentName": self.component} if self.component else {}
        try:
            response = self.client.invoke_endpoint(EndpointName=self.endpoint, Body=body, ContentType=content_type,
                                                   Accept=accept, **target)
        except ClientError as exc:
            raise _from_client_error(exc) from None
        except ReadTimeoutError:
            raise EndpointError(problems.GATEWAY_TIMEOUT, "The model did not answer in time") from None
        except ConnectionError:
            raise EndpointError(problems.UNAVAILABLE, "The model's endpoint cannot be reached", retry_after=5) from None
        version = answered_version(response.get("CustomAttributes")) or self.entry.version
        return response["Body"].read(), response.get("ContentType", "application/json"), version

    def predict(self, raw_inputs: Any) -> dict[str, Any]:
        return self.predict_versioned(raw_inputs)[0]

    def predict_versioned(self, raw_inputs: Any) -> tuple[dict[str, Any], str]:
        """The outputs and the model version that computed them."""
        body = json.dumps({"inputs": raw_inputs}, separators=(",", ":")).encode()
        answer, _, version = self._invoke(body, "application/json", "application/json")
        outputs: dict[str, Any] = json.loads(answer)["outputs"]
        return outputs, version

    def infer_v2(self, body: bytes, json_length: int | None) -> tuple[bytes, dict[str, str]]:
        """An Open Inference Protocol infer request, JSON or binary, passed to the container as SageMaker's
        Triton containers take it (the JSON header's size in the content type); its answer and headers."""
        answer, content_type, version = self._invoke(body, v2_content_type(json_length or len(body)), V2_CONTENT_TYPE)
        size = header_size(content_type)
        if size is not None and size < len(answer):
            return answer, {"content-type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(size),
                            MODEL_VERSION_HEADER: version}
        return answer, {"content-type": "application/json", MODEL_VERSION_HEADER: version}

    def predict_many(self, inputs: list[Any], concurrency: int = 8) -> list[dict[str, Any] | EndpointError]:
        """One invocation per job, concurrently: the container's dynamic batcher stacks them."""
        def one(raw: Any) -> dict[str, Any] | EndpointError:
            try:
                return self.predict(raw)
            except EndpointError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(inputs)))) as pool:
            return list(pool.map(one, inputs))

    def infer_many(self, documents: list[Any], concurrency: int = 8) -> list[dict[str, Any] | EndpointError]:
        """Open Inference Protocol infer requests (JSON documents), one invocation each, concurrently; each
        one's infer response as a JSON object."""
        def one(document: Any) -> dict[str, Any] | EndpointError:
            try:
                answer, _ = self.infer_v2(json.dumps(document, separators=(",", ":")).encode(), None)
            except EndpointError as exc:
                return exc
            result: dict[str, Any] = json.loads(answer)
            return result

        with ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(documents)))) as pool:
            return list(pool.map(one, documents))

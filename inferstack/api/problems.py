"""RFC 9457 problem details: the one error format of the API, the app's and the gateway's alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROBLEM_JSON = "application/problem+json"
#: `instance` of a problem: this prefix and the request's X-Ray trace ID (`inferstack.observability.tracing`).
TRACE_INSTANCE_PREFIX = "urn:x-amzn-trace-id:"
TYPE_PREFIX = "urn:inferstack:problem:"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug

    def body(self, detail: str, **extensions: Any) -> dict[str, Any]:
        return {"type": self.uri, "title": self.title, "status": self.status, "detail": detail, **extensions}

    def encode(self, detail: str, **extensions: Any) -> bytes:
        return json.dumps(self.body(detail, **extensions)).encode()


class ProblemError(Exception):
    """Raise to answer with a problem+json response; `headers` go with it (e.g. `Retry-After`)."""

    def __init__(self, problem: ProblemType, detail: str, *, headers: dict[str, str] | None = None,
                 **extensions: Any) -> None:
        self.problem, self.detail, self.extensions = problem, detail, extensions
        self.headers = headers or {}
        super().__init__(detail)


MALFORMED_JSON = ProblemType("malformed-json", 400, "Malformed JSON body")
BAD_BINARY_DATA = ProblemType("bad-binary-data", 400, "Binary tensor data does not match its declared size")
BAD_REQUEST_BODY = ProblemType("bad-request-body", 400, "Request body does not match the route's schema")
FORBIDDEN = ProblemType("forbidden", 403, "Forbidden")
NOT_FOUND = ProblemType("not-found", 404, "Not found")
MODEL_NOT_FOUND = ProblemType("model-not-found", 404, "Unknown model")
JOB_NOT_FOUND = ProblemType("job-not-found", 404, "Unknown job")
BATCH_NOT_FOUND = ProblemType("batch-not-found", 404, "Unknown batch")
BATCH_FINISHED = ProblemType("batch-finished", 409, "The batch already ended")
BATCH_NOT_FINISHED = ProblemType("batch-not-finished", 409, "The batch has not ended")
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "Method not allowed")
REQUEST_TIMEOUT = ProblemType("request-timeout", 408, "Request timeout")
IDEMPOTENCY_IN_PROGRESS = ProblemType("idempotency-in-progress", 409, "A request with this key is in progress")
IDEMPOTENCY_CONFLICT = ProblemType("idempotency-conflict", 409, "Idempotency key reused with another body")
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "Request body too large")
UNSUPPORTED_ENCODING = ProblemType("unsupported-encoding", 415, "Unsupported content encoding")
INVALID_INPUT = ProblemType("invalid-input", 422, "Inputs do not match the model's signature")
INVALID_REQUEST = ProblemType("invalid-request", 422, "Invalid request")
THROTTLED = ProblemType("throttled", 429, "Too many requests")
QUOTA_EXCEEDED = ProblemType("quota-exceeded", 429, "Usage plan quota exceeded")
QUEUE_FULL = ProblemType("queue-full", 429, "Too many jobs waiting for this model")
UNSAFE_WEBHOOK = ProblemType("unsafe-webhook-url", 422, "Webhook URL refused")
INTERNAL = ProblemType("internal", 500, "Internal error")
MISROUTED = ProblemType("misrouted", 500, "Request reached the wrong function")
BAD_GATEWAY = ProblemType("bad-gateway", 502, "Bad gateway")
UNAVAILABLE = ProblemType("unavailable", 503, "Service unavailable")
SCALING_OUT = ProblemType("scaling-out", 503, "The model is starting: it was scaled to zero while idle")
GATEWAY_TIMEOUT = ProblemType("gateway-timeout", 504, "Integration timed out")


@dataclass(frozen=True)
class GatewayResponse:
    """An API Gateway gateway response (`ResponseType`) rendered as problem+json.

    The CDK app installs each one with the `detail` below as a mapping template; the local gateway answers the
    same bodies, so a client sees the same errors on AWS and under `inferstack dev`.
    """

    response_type: str
    problem: ProblemType
    detail: str
    retry_after: bool = False
    #: DEFAULT_4XX/DEFAULT_5XX keep the status of the error they stand for, so their body names none.
    fixed_status: bool = True

    def body(self, detail: str | None = None, *, trace_id: str | None = None) -> dict[str, Any]:
        """problem+json, with the detail also as `error`: gateway responses are the same for the whole API, and
        Open Inference Protocol clients read an error's message there (`{"error": ...}`). `instance` names the
        request's X-Ray trace, as the functions' problems do."""
        detail = detail or self.detail
        extensions = {"instance": TRACE_INSTANCE_PREFIX + trace_id} if trace_id else {}
        return {**self.problem.body(detail, **extensions), "error": detail}

    def template(self) -> str:
        """The mapping template API Gateway renders (`$context` variables are filled in per request; the stage
        traces every request)."""
        body = self.body(trace_id="$context.xrayTraceId")
        if not self.fixed_status:
            del body["status"]
        return json.dumps({**body, "requestId": "$context.requestId"})


GATEWAY_RESPONSES: tuple[GatewayResponse, ...] = (
    GatewayResponse("MISSING_AUTHENTICATION_TOKEN", FORBIDDEN, "No route matches this method and path"),
    GatewayResponse("INVALID_API_KEY", FORBIDDEN,
                    "Missing or invalid API key: send a valid key in the x-api-key header"),
    GatewayResponse("ACCESS_DENIED", FORBIDDEN, "Access denied"),
    GatewayResponse("THROTTLED", THROTTLED, "Rate limit exceeded; retry after the Retry-After delay",
                    retry_after=True),
    GatewayResponse("QUOTA_EXCEEDED", QUOTA_EXCEEDED, "This API key's usage plan quota is used up for the period",
                    retry_after=True),
    GatewayResponse("REQUEST_TOO_LARGE", PAYLOAD_TOO_LARGE, "The request body is larger than the API accepts"),
    GatewayResponse("UNSUPPORTED_MEDIA_TYPE", UNSUPPORTED_ENCODING,
                    "The body's Content-Encoding is not one the API decodes (gzip, deflate, identity), or the body "
                    "is not encoded as it says"),
    GatewayResponse("BAD_REQUEST_BODY", BAD_REQUEST_BODY, "Malformed JSON or a body that is not "
                    '{"inputs": ...}'),
    GatewayResponse("INTEGRATION_TIMEOUT", GATEWAY_TIMEOUT, "The backend did not answer within the time limit"),
    GatewayResponse("INTEGRATION_FAILURE", BAD_GATEWAY, "Internal server error: the function failed (see its log)"),
    GatewayResponse("DEFAULT_4XX", ProblemType("gateway-error", 400, "Request rejected by the API gateway"),
                    "The request was rejected by the API gateway", fixed_status=False),
    GatewayResponse("DEFAULT_5XX", ProblemType("gateway-failure", 500, "API gateway failure"),
                    "The API gateway could not complete the request", fixed_status=False),
)

#: Seconds a throttled client is told to wait (API Gateway's token buckets refill every second).
RETRY_AFTER_S = 1


def gateway_response(response_type: str) -> GatewayResponse:
    return next(g for g in GATEWAY_RESPONSES if g.response_type == response_type)

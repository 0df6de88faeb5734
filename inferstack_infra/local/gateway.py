"""A local API Gateway (REST API, Lambda proxy integrations), as an ASGI app.

It routes with the same route table as the CDK app (`inferstack.topology.routes`), enforces API keys bound
to usage plans (token-bucket rate and burst, quota per period), the stage and per-route throttles, the
request body schema and API Gateway's payload limit, turns each request into a REST proxy event, invokes the
function's local runtime and maps the proxy result back. Its errors are the problem+json gateway responses
that the CDK app installs (`inferstack.api.problems.GATEWAY_RESPONSES`).

Bodies are handled as the CDK app configures API Gateway (`inferstack.protocol.events`): a request body with a
`Content-Encoding` is decoded first (gzip, deflate, identity; another coding or a body that is not what it
says is a 415, one that decodes past the payload limit a 413); a body whose content type matches the binary
media types reaches the function base64-encoded, any other as text; a base64 result goes back as bytes when
the request's first Accept type matches them; and a response of at least `minimumCompressionSize` bytes is
compressed with the client's highest-priority Accept-Encoding when that is gzip or deflate. The API is also
served under its stage (`/prod/v1/...`), as a deployed invoke URL is.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

import jsonschema

from inferstack.api.jsonbody import PARSE_RATIO, PARSE_SLACK_BYTES, parse_cost
from inferstack.api.problems import PROBLEM_JSON, REQUEST_TIMEOUT, RETRY_AFTER_S, gateway_response
from inferstack.manifest import Manifest, Quota, Throttle, UsagePlan
from inferstack.observability.tracing import new_trace_header, trace_id
from inferstack.protocol.compression import compress, decompress, response_coding
from inferstack.protocol.events import BINARY_MEDIA_TYPES, MIN_COMPRESSION_BYTES
from inferstack.protocol.exceptions import DecodedTooLargeError, ProtocolError
from inferstack.topology import API_STAGE, Route
from inferstack_infra.local.paths import compile_routes, match_route, printable

#: API Gateway's fixed limits for REST APIs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0
#: Seconds a client has to send a request's body (its headers: `slowloris.HEADER_TIMEOUT_S`).
BODY_TIMEOUT_S = 30.0

Scope = dict[str, Any]
#: The trace of the request being handled (each request runs in its own task, with its own context).
_TRACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)
#: What `handle` notes in the scope for the observer: the matched route's path, and the path without the stage.
ROUTE, PATH = "inferstack.route", "inferstack.path"
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Invoker(Protocol):
    """Invokes a function by its key with an event; returns (payload, function_error)."""

    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]: ...


class TokenBucket:
    """API Gateway's throttle: `rate` tokens a second refill a bucket of `burst`; one request takes one."""

    def __init__(self, throttle: Throttle) -> None:
        self.rate, self.capacity = throttle.rate, float(throttle.burst)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _period_start(period: str, now: dt.datetime) -> dt.datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "WEEK":
        return day - dt.timedelta(days=day.weekday())
    if period == "MONTH":
        return day.replace(day=1)
    return day


@dataclass
class QuotaCounter:
    quota: Quota
    window: dt.datetime | None = None
    used: int = 0

    def take(self) -> bool:
        start = _period_start(self.quota.period, dt.datetime.now(dt.UTC))
        if start != self.window:
            self.window, self.used = start, 0
        if self.used >= self.quota.limit:
            return False
        self.used += 1
        return True


@dataclass
class ApiKey:
    value: str
    plan: UsagePlan
    bucket: TokenBucket = field(init=False)
    quota: QuotaCounter | None = field(init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.plan.throttle)
        self.quota = QuotaCounter(self.plan.quota) if self.plan.quota else None

    @property
    def id(self) -> str:
        return "key-" + hashlib.sha256(self.value.encode()).hexdigest()[:10]


def _multi(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in pairs:
        single[k] = v  # API Gateway keeps the last value
        multi.setdefault(k, []).append(v)
    return single, multi


def media_type_matches(value: str | None, patterns: tuple[str, ...] = BINARY_MEDIA_TYPES) -> bool:
    """Does a Content-Type or Accept type match one of the binary media types (`*` wildcards allowed)? A missing
    one is API Gateway's default, application/json."""
    kind = (value or "application/json").split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    for pattern in patterns:
        p_main, _, p_sub = pattern.lower().partition("/")
        if p_main in ("*", main) and p_sub in ("*", sub):
            return True
    return False


def build_event(*, route: Route, params: Mapping[str, str], method: str, path: str, query: str,
                headers: list[tuple[str, str]], body: bytes, source_ip: str, api_key: ApiKey | None,
                request_id: str) -> dict[str, Any]:
    """A REST API Lambda proxy event with the fields API Gateway sends."""
    single_h, multi_h = _multi(headers)
    single_q, multi_q = _multi(parse_qsl(query, keep_blank_values=True))
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    text: str | None = None
    is_b64 = False
    if body and media_type_matches(content_type):
        text, is_b64 = base64.b64encode(body).decode(), True
    elif body:
        text = body.decode("utf-8", "replace")  # a text media type: bytes that are not UTF-8 do not survive
    now = time.time()
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single_h,
        "multiValueHeaders": multi_h,
        "queryStringParameters": single_q,
        "multiValueQueryStringParameters": multi_q,
        "pathParameters": dict(params) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": hashlib.sha256(route.path.encode()).hexdigest()[:6],
            "resourcePath": route.path,
            "httpMethod": method,
            "extendedRequestId": request_id[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{API_STAGE}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": API_STAGE,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": (single_h or {}).get("user-agent"),
                "apiKey": api_key.value if api_key else None,
                "apiKeyId": api_key.id if api_key else None,
                "accountId": None, "caller": None, "user": None, "userArn": None,
                "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None,
            },
            "domainName": "localhost",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


#: What the gateway tells an observer of each answer: method, the route's path (None when no route matched), the
#: path asked (without the stage), status, milliseconds.
Observer = Callable[[str, str | None, str, int, float], None]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LOCAL_PREFIX = "/_local/"


class Gateway:
    def __init__(self, manifest: Manifest, routes: list[Route], invoker: Invoker,
                 api_keys: Mapping[str, str], *, log: Callable[[str], None] = print,
                 integration_timeout_s: float = INTEGRATION_TIMEOUT_S, observe: Observer | None = None,
                 body_timeout_s: float = BODY_TIMEOUT_S,
                 local: ASGIApp | None = None) -> None:
        """`observe` hears of every answer (the local metrics); `local` serves `/_local/...` (the local dashboard,
        which only `inferstack dev` has)."""
        self.observe, self.local = observe, local
        plans = {p.name: p for p in manifest.api.plans}
        self.keys = {value: ApiKey(value, plans[plan]) for value, plan in api_keys.items()}
        self.table = compile_routes(routes)
        self.invoker = invoker
        self.stage_bucket = TokenBucket(manifest.api.throttle)
        self.route_buckets = {(r.method, r.path): TokenBucket(r.throttle) for r in routes if r.throttle}
        # compiled once: jsonschema.validate() would rebuild and re-check the validator on every request
        self.validators = {(r.method, r.path): jsonschema.Draft4Validator(r.body_schema)
                           for r in routes if r.body_schema is not None}
        self.log = log
        self.integration_timeout_s = integration_timeout_s
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self.local is not None and scope["path"].startswith(LOCAL_PREFIX):
            await self.local(scope, receive, send)
            return
        started = time.perf_counter()
        status, headers, payload = await self.handle(scope, receive)
        status, headers, payload = self._encode(scope, status, headers, payload)
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers if k.lower() != "content-length"]
        raw_headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})
        ms = (time.perf_counter() - started) * 1000
        self.log(printable(f"{scope['method']} {scope['path']} {status} {ms:.1f}ms"))
        if self.observe is not None:
            self.observe(scope["method"], scope.get(ROUTE), str(scope.get(PATH, scope["path"])), status, ms)

    @staticmethod
    def _encode(scope: Scope, status: int, headers: list[tuple[str, str]], payload: bytes
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        """API Gateway's response compression (`minimumCompressionSize`)."""
        if len(payload) < MIN_COMPRESSION_BYTES or any(k.lower() == "content-encoding" for k, _ in headers):
            return status, headers, payload
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"accept-encoding"), None)
        coding = response_coding(accept)
        if coding is None:
            return status, headers, payload
        return status, [*headers, ("Content-Encoding", coding)], compress(payload, coding)

    def _gateway_error(self, response_type: str, detail: str | None = None
                       ) -> tuple[int, list[tuple[str, str]], bytes]:
        g = gateway_response(response_type)
        headers = [("Content-Type", PROBLEM_JSON)]
        if g.retry_after:
            headers.append(("Retry-After", str(RETRY_AFTER_S)))
        return g.problem.status, headers, json.dumps(g.body(detail, trace_id=trace_id(_TRACE.get() or ""))).encode()

    async def handle(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[str, str]], bytes]:
        method = scope["method"]
        # Routing uses the raw path, decoded segment by segment in `match_route`; the event's `path` is the raw
        # path too, as API Gateway sends it (Mangum decodes it once), and its `pathParameters` are decoded once.
        # A client's path is never decoded twice.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        header = {k.lower(): v for k, v in raw_headers}
        # the stage traces every request: API Gateway starts its trace (or continues the client's)
        trace = header.get("x-amzn-trace-id") or new_trace_header()
        _TRACE.set(trace)

        body = bytearray()
        declared = int(header.get("content-length") or 0)
        if declared > MAX_PAYLOAD_BYTES:
            return self._gateway_error("REQUEST_TOO_LARGE")
        try:
            async with asyncio.timeout(self.body_timeout_s):  # a body dripped slowly holds nothing for long
                while True:
                    message = await receive()
                    body += message.get("body", b"")
                    if len(body) > MAX_PAYLOAD_BYTES:
                        return self._gateway_error("REQUEST_TOO_LARGE")
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            return 408, [("Content-Type", PROBLEM_JSON), ("Connection", "close")], REQUEST_TIMEOUT.encode(
                f"The request body did not arrive within {self.body_timeout_s:g} s")

        if path == f"/{API_STAGE}" or path.startswith(f"/{API_STAGE}/"):
            path = path[len(API_STAGE) + 1:] or "/"  # the invoke URL's stage
        encoding = header.get("content-encoding")
        if body and encoding:
            try:
                body = bytearray(decompress(bytes(body), encoding, MAX_PAYLOAD_BYTES))
            except DecodedTooLargeError:
                return self._gateway_error("REQUEST_TOO_LARGE")
            except ProtocolError as exc:
                return self._gateway_error("UNSUPPORTED_MEDIA_TYPE", str(exc))

        scope[PATH] = unquote(path)
        matched = match_route(self.table, method, path)
        if matched is None:
            return self._gateway_error("MISSING_AUTHENTICATION_TOKEN")
        route, params = matched
        scope[ROUTE] = route.path

        key: ApiKey | None = None
        if route.api_key_required:
            key = self.keys.get(header.get("x-api-key", ""))
            if key is None:
                return self._gateway_error("INVALID_API_KEY")
            if not key.bucket.take():
                return self._gateway_error("THROTTLED")
            if key.quota and not key.quota.take():
                return self._gateway_error("QUOTA_EXCEEDED")
        route_bucket = self.route_buckets.get((route.method, route.path))
        if (route_bucket and not route_bucket.take()) or not self.stage_bucket.take():
            return self._gateway_error("THROTTLED")

        validator = self.validators.get((route.method, route.path))
        # A body too costly to parse here goes on unchecked: the function refuses it before parsing (413); the
        # gateway process must not pay for it either.
        if validator is not None and parse_cost(bytes(body)) <= PARSE_RATIO * len(body) + PARSE_SLACK_BYTES:
            try:
                error = jsonschema.exceptions.best_match(validator.iter_errors(json.loads(body)))
            except json.JSONDecodeError as exc:
                return self._gateway_error("BAD_REQUEST_BODY", f"Invalid request body: [Invalid JSON: {exc.msg} at "
                                           f"line {exc.lineno} column {exc.colno}]")
            except (ValueError, RecursionError) as exc:  # not UTF-8/16/32, an integer past the digit limit, deep
                reason = "nested too deeply" if isinstance(exc, RecursionError) else \
                    "not UTF-8 text" if isinstance(exc, UnicodeError) else "an integer with too many digits"
                return self._gateway_error("BAD_REQUEST_BODY", f"Invalid request body: [Invalid JSON: {reason}]")
            if error is not None:
                return self._gateway_error("BAD_REQUEST_BODY", f"Invalid request body: [{error.message}]")

        request_id = str(uuid.uuid4())
        if "x-amzn-trace-id" not in header:
            raw_headers.append(("X-Amzn-Trace-Id", trace))
        client = scope.get("client") or ("127.0.0.1", 0)
        event = build_event(route=route, params=params, method=method, path=path,
                            query=scope.get("query_string", b"").decode(), headers=raw_headers, body=bytes(body),
                            source_ip=client[0], api_key=key, request_id=request_id)
        try:
            result, failed = await self.invoker.invoke(route.function, event, self.integration_timeout_s)
        except TimeoutError:
            return self._gateway_error("INTEGRATION_TIMEOUT")
        except Exception as exc:
            self.log(printable(f"invoking {route.function} failed: {type(exc).__name__}: {exc}"))
            return self._gateway_error("INTEGRATION_FAILURE")
        if failed or not isinstance(result, dict) or "statusCode" not in result:
            self.log(printable(f"function {route.function} failed: {str(result)[:500]}"))
            return self._gateway_error("INTEGRATION_FAILURE")
        accept = (header.get("accept") or "").split(",", 1)[0] or "*/*"
        return self._proxy_response(result, request_id, binary=media_type_matches(accept))

    @staticmethod
    def _proxy_response(result: dict[str, Any], request_id: str, *, binary: bool = True
                        ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The client's answer; a base64 body is decoded only when the request's first Accept type is a binary
        media type (else the client gets the base64 text, as from API Gateway)."""
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for k, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((k, str(v)) for v in values)
        headers.append(("x-amzn-RequestId", request_id))
        text = result.get("body") or ""
        payload = base64.b64decode(text) if result.get("isBase64Encoded") and binary else text.encode()
        return int(result["statusCode"]), headers, payload

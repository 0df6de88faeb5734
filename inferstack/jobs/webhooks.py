"""Webhook delivery, per the Standard Webhooks spec, signed with the `standardwebhooks` library.

Each delivery is one message on the webhook queue. An attempt re-checks the URL (DNS rebinding: the address
it connects to is the one it just checked), POSTs without following redirects, and records itself on the job.
A failed attempt is retried by sending the message again with an SQS delay: exponential backoff with jitter,
never sooner than the receiver's `Retry-After`, capped at SQS's 900 s. `410 Gone` stops delivery. The job's
result never depends on delivery: it stays readable at `GET /v1/jobs/{id}`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from standardwebhooks.webhooks import Webhook

from inferstack import __version__
from inferstack.aws import AwsClients
from inferstack.jobs.exceptions import UnsafeWebhookUrlError
from inferstack.jobs.schemas import WebhookMessage
from inferstack.jobs.settings import JobsSettings
from inferstack.jobs.sqs import partial_batch_response
from inferstack.jobs.ssrf import CheckedUrl, Resolver, check_webhook_url, system_resolver
from inferstack.jobs.store import Job, JobStore, now_iso
from inferstack.observability import emf, logger, registry, xray
from inferstack.observability.tracing import sqs_trace_attributes

MAX_SQS_DELAY_S = 900
#: Results up to this size travel in the webhook body; larger ones are fetched from GET /v1/jobs/{id}.
INLINE_WEBHOOK_RESULT_BYTES = 64_000
SECRET_CACHE_S = 300
#: Resolves webhook hosts at send time; a lookup past the deadline is abandoned here, never waited for.
RESOLVERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="webhook-dns")


def signing_secret(secret_string: str) -> str:
    """The `whsec_...` secret from what Secrets Manager holds: a `whsec_` string as is, or the JSON
    `{"key": ...}` that CloudFormation generates (its key's bytes are the HMAC key)."""
    if secret_string.startswith("whsec_"):
        return secret_string
    key = json.loads(secret_string)["key"]
    return "whsec_" + base64.b64encode(key.encode()).decode()


def webhook_id(job_id: str) -> str:
    return f"msg_{job_id}"


def job_event(job: Job, result: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {"job_id": job.job_id, "model": job.model, "status": job.status,
                            "links": {"self": f"/v1/jobs/{job.job_id}"}}
    if job.metadata is not None:
        data["metadata"] = job.metadata
    if job.model_version is not None:
        data["model_version"] = job.model_version
    if job.status == "failed":
        data["error"] = job.error
    elif result is not None and len(json.dumps(result)) <= INLINE_WEBHOOK_RESULT_BYTES:
        data["result"] = result
    return {"type": f"job.{job.status}", "timestamp": now_iso(), "data": data}


def backoff_s(attempt: int, base_s: float, retry_after_s: float | None = None,
              rand: Callable[[], float] = random.random) -> int:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1), half of it jittered, at least Retry-After."""
    ceiling = min(MAX_SQS_DELAY_S, base_s * 2 ** (attempt - 1))
    delay = ceiling / 2 + rand() * ceiling / 2
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return int(min(MAX_SQS_DELAY_S, math.ceil(delay)))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class PostOutcome:
    """What one POST got: the receiver's status and Retry-After, or why there is none (`error`, transient;
    `refused`, final: the URL is not one webhooks go to)."""

    status_code: int | None = None
    retry_after: str | None = None
    error: str | None = None
    refused: str | None = None


class WebhookSender:
    """Delivers webhooks: each attempt has a total deadline (`webhook_timeout_s`: resolving the host, connecting,
    sending, and the receiver's status line and headers), and reads nothing of the receiver's body (its headers
    at most 16 KB: h11's limit). The messages of a batch are sent concurrently, so a slow or hostile receiver
    delays no other tenant's webhook, and a batch takes one deadline, well within the function's timeout."""

    def __init__(self, settings: JobsSettings, aws: AwsClients, store: JobStore, *,
                 transport: httpx.AsyncBaseTransport | None = None, resolve: Resolver = system_resolver,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings, self.aws, self.store = settings, aws, store
        self.transport = transport
        self.resolve, self.rand = resolve, rand
        self._signer: tuple[float, Webhook] | None = None

    def signer(self) -> Webhook:
        if self._signer is None or time.monotonic() - self._signer[0] > SECRET_CACHE_S:
            value = self.aws.secrets.get_secret_value(SecretId=self.settings.secret_id)["SecretString"]
            self._signer = (time.monotonic(), Webhook(signing_secret(value)))
        return self._signer[1]

    def enqueue(self, message: WebhookMessage, delay_s: int = 0) -> None:
        self.aws.sqs.send_message(QueueUrl=self.settings.webhook_queue, MessageBody=message.model_dump_json(),
                                  DelaySeconds=delay_s, **sqs_trace_attributes())

    def message_for(self, job: Job, result: Any = None) -> WebhookMessage | None:
        if not job.webhook_url:
            return None
        return WebhookMessage(job_id=job.job_id, url=job.webhook_url, event=job_event(job, result))

    def _signed(self, message: WebhookMessage) -> tuple[str, dict[str, str]]:
        body = json.dumps(message.event, separators=(",", ":"))
        msg_id = webhook_id(message.job_id)
        sent_at = dt.datetime.now(dt.UTC)
        return body, {
            "content-type": "application/json",
            "user-agent": f"inferstack-webhooks/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(math.floor(sent_at.timestamp())),
            "webhook-signature": self.signer().sign(msg_id, sent_at, body),
        }

    def _check(self, url: str) -> CheckedUrl:
        return check_webhook_url(url, allow_loopback=self.settings.allow_loopback_webhooks, resolve=self.resolve,
                                 refused_ports=self.settings.refused_ports())

    async def _post(self, client: httpx.AsyncClient, url: str, body: str, headers: dict[str, str]) -> PostOutcome:
        deadline = self.settings.webhook_timeout_s
        try:
            async with asyncio.timeout(deadline):
                # The host is resolved and checked again now (DNS rebinding), off the loop, in a pool whose
                # threads no one waits for: a resolver slower than the deadline holds up nothing.
                checked = await asyncio.wrap_future(RESOLVERS.submit(self._check, url))
                address = checked.addresses[0]
                parts = httpx.URL(url)
                pinned = parts.copy_with(host=address)  # the address just checked, not a second lookup
                host_header = checked.host if parts.port is None else f"{checked.host}:{parts.port}"
                extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
                async with client.stream("POST", pinned, content=body.encode(), timeout=deadline,
                                         headers={**headers, "Host": host_header}, extensions=extensions) as response:
                    return PostOutcome(response.status_code, response.headers.get("retry-after"))
        except UnsafeWebhookUrlError as exc:
            return PostOutcome(refused=str(exc))
        except TimeoutError:
            return PostOutcome(error=f"no answer (status line and headers) within the {deadline:g} s deadline")
        except httpx.HTTPError as exc:  # its message may name addresses: the log has it, the job the kind
            logger.info("webhook attempt failed", extra={"job_url": url[:200], "error": str(exc)[:500]})
            return PostOutcome(error=f"the receiver could not be reached ({type(exc).__name__})")

    async def _post_all(self, posts: list[tuple[str, str, dict[str, str]]]) -> list[PostOutcome]:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=self.transport) as client:
            return list(await asyncio.gather(*(self._post(client, *post) for post in posts)))

    def deliver_many(self, messages: list[WebhookMessage]) -> list[str | Exception]:
        """One delivery attempt per message, all at once; each message's webhook status after it (or the
        exception recording it raised: that message alone is retried)."""
        signed = [self._signed(m) for m in messages]
        outcomes = asyncio.run(self._post_all([(m.url, body, headers) for m, (body, headers)
                                               in zip(messages, signed, strict=True)]))
        results: list[str | Exception] = []
        for message, outcome in zip(messages, outcomes, strict=True):
            try:
                results.append(self._record(message, outcome))
            except Exception as exc:
                results.append(exc)
        return results

    def deliver(self, message: WebhookMessage) -> str:
        """One delivery attempt; returns the job's webhook status after it."""
        (result,) = self.deliver_many([message])
        if isinstance(result, Exception):
            raise result
        return result

    def _record(self, message: WebhookMessage, outcome: PostOutcome) -> str:
        """Record an attempt on the job, and send the next one on its way (with its backoff) if one follows."""
        attempt: dict[str, Any] = {"at": now_iso(), "attempt": message.attempt}
        final = False
        code = outcome.status_code
        if outcome.refused is not None:
            status, final = "failed", True
            attempt["error"] = f"refused at send time: {outcome.refused}"
        elif code is None:
            status = "pending"
            attempt["error"] = outcome.error
        else:
            attempt["status_code"] = code
            if 200 <= code < 300:
                status, final = "delivered", True
            elif code == 410:
                status, final = "gone", True
                attempt["error"] = "receiver answered 410 Gone: delivery stopped"
            else:
                status = "pending"
                attempt["error"] = f"receiver answered {code}" + (
                    " (redirects are not followed)" if 300 <= code < 400 else "")
        if not final:
            if message.attempt >= self.settings.webhook_max_attempts:
                status = "failed"
            else:
                retry_after = parse_retry_after(outcome.retry_after) if code is not None else None
                delay = backoff_s(message.attempt, self.settings.webhook_backoff_s, retry_after, self.rand)
                attempt["next_in_s"] = delay
                self.enqueue(message.model_copy(update={"attempt": message.attempt + 1}), delay)
        self.store.record_webhook_attempt(message.job_id, attempt, status, record=message.record)
        _measure(message, status)
        return status


def _measure(message: WebhookMessage, status: str) -> None:
    """One attempt, by outcome, on the job's model."""
    model = (message.event.get("data") or {}).get("model")
    if not isinstance(model, str):
        return
    metrics = registry.model(model)
    metrics.add(emf.WEBHOOK_ATTEMPTS)
    metrics.add(emf.WEBHOOK_DELIVERED if status == "delivered" else
                emf.WEBHOOK_RETRIED if status == "pending" else emf.WEBHOOK_GAVE_UP)


class WebhookHandler:
    """The webhook function: one delivery attempt per message, the batch's messages at once."""

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        records = [SQSRecord(r) for r in event.get("Records", [])]
        messages: dict[str, WebhookMessage] = {}
        for record in records:
            try:
                messages[record.message_id] = WebhookMessage.model_validate_json(record.body)
            except ValueError:
                logger.error("dropping a malformed webhook message", extra={"message_id": record.message_id})
        results = dict(zip(messages, self.sender.deliver_many(list(messages.values())), strict=True)) \
            if messages else {}
        for message_id, message in messages.items():  # each delivery's job, findable in X-Ray by its job ID
            data = message.event.get("data") or {}
            with xray.traced("## webhook", model=_str(data.get("model")), version=_str(data.get("model_version")),
                             job_id=message.job_id) as sub:
                if sub is not None:
                    outcome = results.get(message_id)
                    sub.put_metadata("outcome", repr(outcome) if isinstance(outcome, Exception) else outcome)

        def record_handler(record: SQSRecord) -> None:
            result = results.get(record.message_id)
            if isinstance(result, Exception):
                raise result

        try:
            return partial_batch_response(event, record_handler, context)
        finally:
            registry.flush()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None

"""Webhook delivery, per the Standard Webhooks spec, signed with the `standardwebhooks` library.

Each delivery is one message on the webhook queue. An attempt re-checks the URL (DNS rebinding: the address
it connects to is the one it just checked), POSTs without following redirects, and records itself on the job.
A failed attempt is retried by sending the message again with an SQS delay: exponential backoff with jitter,
never sooner than the receiver's `Retry-After`, capped at SQS's 900 s. `410 Gone` stops delivery. The job's
result never depends on delivery: it stays readable at `GET /v1/jobs/{id}`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import random
import time
from collections.abc import Callable
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
from inferstack.jobs.ssrf import Resolver, check_webhook_url, system_resolver
from inferstack.jobs.store import Job, JobStore, now_iso
from inferstack.observability import emf, registry

MAX_SQS_DELAY_S = 900
#: Results up to this size travel in the webhook body; larger ones are fetched from GET /v1/jobs/{id}.
INLINE_WEBHOOK_RESULT_BYTES = 64_000
SECRET_CACHE_S = 300


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


class WebhookSender:
    def __init__(self, settings: JobsSettings, aws: AwsClients, store: JobStore, *,
                 http: httpx.Client | None = None, resolve: Resolver = system_resolver,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings, self.aws, self.store = settings, aws, store
        self.http = http or httpx.Client(follow_redirects=False, trust_env=False)
        self.resolve, self.rand = resolve, rand
        self._signer: tuple[float, Webhook] | None = None

    def signer(self) -> Webhook:
        if self._signer is None or time.monotonic() - self._signer[0] > SECRET_CACHE_S:
            value = self.aws.secrets.get_secret_value(SecretId=self.settings.secret_id)["SecretString"]
            self._signer = (time.monotonic(), Webhook(signing_secret(value)))
        return self._signer[1]

    def enqueue(self, message: WebhookMessage, delay_s: int = 0) -> None:
        self.aws.sqs.send_message(QueueUrl=self.settings.webhook_queue, MessageBody=message.model_dump_json(),
                                  DelaySeconds=delay_s)

    def message_for(self, job: Job, result: Any = None) -> WebhookMessage | None:
        if not job.webhook_url:
            return None
        return WebhookMessage(job_id=job.job_id, url=job.webhook_url, event=job_event(job, result))

    def _post(self, url: str, body: str, headers: dict[str, str]) -> httpx.Response:
        checked = check_webhook_url(url, allow_loopback=self.settings.allow_loopback_webhooks, resolve=self.resolve)
        address = checked.addresses[0]
        pinned_host = f"[{address}]" if ":" in address else address
        parts = httpx.URL(url)
        pinned = parts.copy_with(host=pinned_host.strip("[]"))
        host_header = checked.host if parts.port is None else f"{checked.host}:{parts.port}"
        return self.http.post(pinned, content=body.encode(), headers={**headers, "Host": host_header},
                              timeout=self.settings.webhook_timeout_s,
                              extensions={"sni_hostname": checked.host} if checked.scheme == "https" else {})

    def deliver(self, message: WebhookMessage) -> str:
        """One delivery attempt; returns the job's webhook status after it."""
        body = json.dumps(message.event, separators=(",", ":"))
        msg_id = webhook_id(message.job_id)
        sent_at = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": f"inferstack-webhooks/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(math.floor(sent_at.timestamp())),
            "webhook-signature": self.signer().sign(msg_id, sent_at, body),
        }
        attempt: dict[str, Any] = {"at": now_iso(), "attempt": message.attempt}
        retry_after: float | None = None
        final = False
        try:
            response = self._post(message.url, body, headers)
            attempt["status_code"] = response.status_code
            if 200 <= response.status_code < 300:
                status = "delivered"
                final = True
            elif response.status_code == 410:
                status, final = "gone", True
                attempt["error"] = "receiver answered 410 Gone: delivery stopped"
            else:
                status = "pending"
                attempt["error"] = f"receiver answered {response.status_code}"
                if 300 <= response.status_code < 400:
                    attempt["error"] += " (redirects are not followed)"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
        except UnsafeWebhookUrlError as exc:
            status, final = "failed", True
            attempt["error"] = f"refused at send time: {exc}"
        except httpx.HTTPError as exc:
            status = "pending"
            attempt["error"] = f"{type(exc).__name__}: {exc}"[:500]
        if not final:
            if message.attempt >= self.settings.webhook_max_attempts:
                status = "failed"
            else:
                delay = backoff_s(message.attempt, self.settings.webhook_backoff_s, retry_after, self.rand)
                attempt["next_in_s"] = delay
                self.enqueue(message.model_copy(update={"attempt": message.attempt + 1}), delay)
        self.store.record_webhook_attempt(message.job_id, attempt, status)
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
    """The webhook function: one delivery attempt per message."""

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender

    def record(self, record: SQSRecord) -> None:
        self.sender.deliver(WebhookMessage.model_validate_json(record.body))

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        try:
            return partial_batch_response(event, self.record, context)
        finally:
            registry.flush()

"""A webhook receiver for development: verifies each delivery's Standard Webhooks signature and prints it.

    inferstack webhooks listen --port 9000 --secret whsec_...

Tests use it with scripted answers (`script=[500, 200]`, or `(429, {"Retry-After": "2"})`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from inferstack_infra.local.http import QuietHandler

Answer = int | tuple[int, dict[str, str]]


@dataclass
class Delivery:
    webhook_id: str
    payload: Any
    verified: bool
    answered: int
    headers: dict[str, str]


class WebhookReceiver:
    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0, script: list[Answer] | None = None,
                 on_delivery: Callable[[Delivery], None] | None = None) -> None:
        self.verifier = Webhook(secret)
        self.script = list(script or [])
        self.deliveries: list[Delivery] = []
        self.on_delivery = on_delivery
        self.lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.0"  # one delivery, one connection

            def do_POST(self) -> None:
                body = self.read_body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = receiver.verifier.verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    payload, verified = body.decode(errors="replace"), False
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else 200
                status, extra = (answer, {}) if isinstance(answer, int) else answer
                if not verified:
                    status = 401
                delivery = Delivery(headers.get("webhook-id", ""), payload, verified, status, headers)
                with receiver.lock:
                    receiver.deliveries.append(delivery)
                if receiver.on_delivery:
                    receiver.on_delivery(delivery)
                self.respond(status, extra, b"")


        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verified(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.verified]


def print_delivery(delivery: Delivery) -> None:
    mark = "verified" if delivery.verified else "SIGNATURE INVALID"
    print(f"--- {delivery.webhook_id} ({mark}, answered {delivery.answered})", flush=True)
    print(json.dumps(delivery.payload, indent=2) if delivery.verified else delivery.payload, flush=True)

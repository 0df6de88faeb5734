"""`/_local/dashboard` (the page), `/_local/metrics` (what it plots, JSON) and `/_local/static/...` (its script
and Chart.js, vendored from npm: chart.js 4.6.1, MIT), as an ASGI app the local gateway mounts; and the sampler of
the queues' depths."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from inferstack_infra.local.monitoring.store import MetricsStore

PREFIX = "/_local"
DASHBOARD_PATH = f"{PREFIX}/dashboard"
STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
MAX_WINDOW_S = 600

Send = Callable[[dict[str, Any]], Awaitable[None]]


class DashboardApp:
    def __init__(self, store: MetricsStore, title: str) -> None:
        self.store, self.title = store, title

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        path = scope["path"]
        if scope["method"] != "GET":
            await self._answer(send, 405, "text/plain", b"GET only")
        elif path in (DASHBOARD_PATH, f"{DASHBOARD_PATH}/"):
            page = (STATIC / "dashboard.html").read_text().replace("{{title}}", self.title)
            await self._answer(send, 200, _TYPES[".html"], page.encode())
        elif path == f"{PREFIX}/metrics":
            query = parse_qs(scope.get("query_string", b"").decode())
            try:
                window = min(MAX_WINDOW_S, max(10, int(query.get("window", ["120"])[0])))
            except ValueError:
                await self._answer(send, 400, "application/json", b'{"error": "window: a number of seconds"}')
                return
            # off the event loop: the gateway's requests go on meanwhile
            body = await asyncio.to_thread(lambda: json.dumps(self.store.snapshot(window)).encode())
            await self._answer(send, 200, "application/json", body)
        elif path.startswith(f"{PREFIX}/static/") and "/" not in path[len(PREFIX) + 8:]:
            file = STATIC / path[len(PREFIX) + 8:]
            if file.suffix in _TYPES and file.is_file():
                await self._answer(send, 200, _TYPES[file.suffix], file.read_bytes(), cache=True)
            else:
                await self._answer(send, 404, "text/plain", b"not found")
        else:
            await self._answer(send, 404, "text/plain", f"not found; the dashboard is at {DASHBOARD_PATH}".encode())

    @staticmethod
    async def _answer(send: Send, status: int, content_type: str, body: bytes, *, cache: bool = False) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"max-age=3600" if cache else b"no-store")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class QueueSampler:
    """Every second while the dashboard is watched: each queue's visible and in-flight messages."""

    def __init__(self, store: MetricsStore, sqs: Any, queue_urls: Mapping[str, str], every_s: float = 1.0) -> None:
        self.store, self.sqs, self.queue_urls, self.every_s = store, sqs, dict(queue_urls), every_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)

    def sample(self) -> None:
        for key, url in self.queue_urls.items():
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            self.store.queue(key, int(attrs["ApproximateNumberOfMessages"]),
                             int(attrs["ApproximateNumberOfMessagesNotVisible"]))

    def _run(self) -> None:
        while not self.stopping.wait(self.every_s):
            if self.store.watched():
                try:
                    self.sample()
                except Exception:  # the emulator restarting (a fault drill): the next second tries again
                    continue

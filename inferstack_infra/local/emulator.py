"""The embedded AWS emulator (moto server), made to hold a sustained load of concurrent clients.

moto models AWS faithfully but was written for tests, one call at a time. Under `inferstack dev`'s load two
things break, and this module contains both without changing what any call answers:

- **Races.** moto's backends are plain dicts and lists shared by the server's request threads (a
  `TransactWriteItems` deep-copies whole tables while another request inserts: `dictionary changed size during
  iteration`). Every request runs under one lock (`SerializedApp`): the backends see one call at a time, as in
  the tests moto was written for. A long-polling `ReceiveMessage` gives the lock up while it waits for
  messages, so that it never holds up the `SendMessage` that ends its wait.
- **Costs that grow with the queue.** moto 5.x reads the clock through `datetime` (microseconds a call) and
  computes every queue attribute, each a scan of the whole queue, for any one of them: `SendMessage` scanned
  the queue three times (for `ContentBasedDeduplication`), `ReceiveMessage` nine times per message received
  (for `MessageRetentionPeriod`). With 2,000 messages queued a receive of 10 took 1.2 s. `patch_sqs` reads
  the clock with `time.time`, computes a queue attribute only when it is asked for, and reads the retention
  period directly: a receive or a send costs the same with 10 or 10,000 messages queued (up to the in-flight
  messages it steps over), and what SQS semantics moto implements (visibility, long polling, delays, redrive
  to the DLQ, `ChangeMessageVisibility`) is untouched.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

#: Held by the request being served; `ReceiveMessage` gives it up while it long-polls.
BACKEND_LOCK = threading.Lock()
_local = threading.local()

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerializedApp:
    """A WSGI app that runs one request at a time, the response body included."""

    def __init__(self, app: WsgiApp, lock: threading.Lock = BACKEND_LOCK) -> None:
        self.app, self.lock = app, lock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            _local.holds = True
            try:
                return list(self.app(environ, start_response))
            finally:
                _local.holds = False


class CachedDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves which host: moto 5.x scans every moto module's
    name and URL pattern for each request (a sixth of a DynamoDB call's time); the answer for a host never
    changes."""

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backends[host]
        except KeyError:
            if len(self._backends) > 1000:  # virtual-hosted S3 names, say: bounded all the same
                self._backends.clear()
            backend = self._backends[host] = super().get_backend_for_host(host)
            return backend


class LocalMotoServer(ThreadedMotoServer):
    """moto's threaded server with every request serialized, whose stop does not wait for long polls."""

    def _server_entry(self) -> None:
        app = SerializedApp(CachedDispatcher(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True,
                                   request_handler=MotoRequestHandler)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        super().stop()
        if self._server:
            self._server.server_close()


def _unix_time(dt: Any = None) -> float:
    if dt is not None:  # a datetime to convert: moto's own function does it
        from moto.core.utils import unix_time

        return unix_time(dt)
    return time.time()


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


class _LazyAttributes(Mapping[str, Any]):
    """A queue's attributes as moto's `Queue.attributes` gives them, each computed when read."""

    def __init__(self, queue: Any) -> None:
        from moto.core.utils import camelcase_to_underscores

        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = {name: camelcase_to_underscores(name) for name in names}
        if queue.policy:
            self._names["Policy"] = ""
        if queue.redrive_policy:
            self._names["RedrivePolicy"] = ""

    def __getitem__(self, name: str) -> Any:
        import json

        if name not in self._names:
            raise KeyError(name)
        if name == "Policy":
            return self._queue.policy
        if name == "RedrivePolicy":
            return json.dumps(self._queue.redrive_policy)
        value = getattr(self._queue, self._names[name])
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _wait_for_messages(self: Any, timeout: int) -> None:
    """moto's long-poll wait, with the backend lock given up meanwhile."""
    holds = getattr(_local, "holds", False)
    if holds:
        BACKEND_LOCK.release()
    try:
        with self._messages_lock:
            self._messages_lock.wait_for(lambda: self.messages, timeout=timeout)
    finally:
        if holds:
            BACKEND_LOCK.acquire()


def _retention_ok(self: Any, queue_name: str, message: Any) -> bool:
    retention_s = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_s + message.sent_timestamp / 1000 > time.time())


def patch_sqs() -> None:
    """Make moto's SQS backend's costs independent of the queue depth (see the module's docstring). Idempotent."""
    from moto.sqs import models

    if models.Queue.wait_for_messages is _wait_for_messages:
        return

    models.unix_time = _unix_time  # type: ignore[attr-defined]
    models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined]
    models.Queue.attributes = property(_LazyAttributes)  # type: ignore[method-assign,assignment]
    models.Queue.wait_for_messages = _wait_for_messages  # type: ignore[method-assign]
    models.SQSBackend.is_message_valid_based_on_retention_period = _retention_ok  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """The emulator as a process of its own (`inferstack dev` runs it so, beside the gateway rather than
    sharing its interpreter): `python -m inferstack_infra.local.emulator --port N`. SIGUSR1 stops serving and
    SIGUSR2 serves again on the same port with the state intact (the fault drill of an AWS outage); SIGTERM
    ends it; so does its parent's death (`lifeline`)."""
    import argparse
    import logging
    import signal

    from inferstack_infra.local.lifeline import watch_parent_from_env

    parser = argparse.ArgumentParser(description="the embedded AWS emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    watch_parent_from_env()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    patch_sqs()
    servers: list[LocalMotoServer] = []
    guard = threading.Lock()

    def serve() -> None:
        with guard:
            if not servers:
                server = LocalMotoServer(ip_address=args.host, port=args.port, verbose=False)
                server.start()
                servers.append(server)

    def pause() -> None:
        with guard:
            while servers:
                servers.pop().stop()

    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=pause, daemon=True).start())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=serve, daemon=True).start())
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # its state lives in memory: nothing to save
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stack stops it, in its turn
    serve()
    print(f"emulator listening on {args.host}:{args.port}", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()

"""The local gateway's read timeouts against slow clients (slowloris), over real sockets to uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from inferstack.manifest import load_manifest
from inferstack.topology import routes
from inferstack_infra.local import slowloris
from inferstack_infra.local.aws import free_port
from inferstack_infra.local.gateway import Gateway
from tests.conftest import EXAMPLE_MANIFEST

TIMEOUT_S = 1.0


class Answers:
    async def invoke(self, function: str, event: dict[str, Any], timeout_s: float) -> tuple[Any, bool]:
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}, False


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    manifest = load_manifest(EXAMPLE_MANIFEST)
    gateway = Gateway(manifest, routes(manifest), Answers(), {}, log=lambda _: None, body_timeout_s=TIMEOUT_S)
    port = free_port()
    config = uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            http=slowloris.protocol(TIMEOUT_S))
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    yield port
    uv.should_exit = True
    thread.join(10)


def _drip(port: int, data: bytes, every_s: float) -> tuple[int, bytes]:
    """Send `data` a byte every `every_s` s until the server hangs up; (bytes sent, what it answered)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(every_s)
        sent = 0
        for i in range(len(data)):
            try:
                sock.sendall(data[i:i + 1])
                sent += 1
                answer = sock.recv(65536)
                return sent, answer  # the server spoke (an answer) or hung up (b"")
            except TimeoutError:
                continue
            except OSError:
                return sent, b""
        return sent, b"(sent everything)"


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: int) -> None:
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000 + b"\r\n\r\n"
    sent, answer = _drip(server, request, every_s=TIMEOUT_S / 5)
    assert answer == b"" and sent < 50 < len(request)  # hung up after about 5 bytes, never answered


def test_a_body_dripped_slowly_gets_408(server: int) -> None:
    body = json.dumps({"inputs": [[1.5, 1.5, 1.5, 1.5]] * 50}).encode()
    head = (b"POST /v1/models/iris/predict HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(head)
        sock.settimeout(TIMEOUT_S / 5)
        answer = b""
        for i in range(len(body)):
            sock.sendall(body[i:i + 1])
            try:
                answer = sock.recv(65536)
                break
            except TimeoutError:
                continue
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 s" in answer


def test_a_prompt_client_is_served(server: int) -> None:
    async def get() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    assert asyncio.run(get()).startswith(b"HTTP/1.1 200")

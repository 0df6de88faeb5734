"""Requests that arrive together, whatever the machine's load: for the tests of the heavy container's batcher.

Threads posting at once do not arrive at once on a loaded machine (two cores shared with other test workers: the
batcher, which dispatches a lone request at once, then sees them one by one). Here the server's process group (the
`serve` entry point and the server it runs) is stopped with SIGSTOP, every request is written whole into its own
connection (the kernel completes the handshakes and holds the bytes), and the group resumes (SIGCONT) to find
them all waiting: what a burst of clients looks like to the server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from inferstack_infra.local.sagemaker import ModelServer


@dataclass
class Answer:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def post_together(server: ModelServer, bodies: list[Any], path: str = "/invocations") -> list[Answer]:
    assert server.proc is not None, "the server runs as a process of its own"
    url = urlsplit(server.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    sockets: list[socket.socket] = []
    os.killpg(os.getpgid(server.proc.pid), signal.SIGSTOP)
    try:
        for body in bodies:
            payload = json.dumps(body).encode()
            sock = socket.create_connection((host, port), timeout=120)
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
            sockets.append(sock)
    finally:
        os.killpg(os.getpgid(server.proc.pid), signal.SIGCONT)
    answers = []
    for sock in sockets:
        with sock:
            response = http.client.HTTPResponse(sock)
            response.begin()
            answers.append(Answer(response.status, response.read().decode()))
    return answers

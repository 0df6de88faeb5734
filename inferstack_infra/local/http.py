"""What the local stand-ins built on `http.server` share."""

from __future__ import annotations

from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no access log (the gateway logs requests), and one way to answer."""

    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY: headers and body leave as two writes, and on a keep-alive connection Nagle's algorithm
    #: would hold the body until the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True

    def respond(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def log_message(self, format: str, *args: Any) -> None:
        pass

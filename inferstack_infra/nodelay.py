"""httpx transports with TCP_NODELAY.

httpx writes a request's headers and body separately; with Nagle's algorithm on, a keep-alive connection
holds the body until the server's delayed ACK (~40 ms). The local stack and the CLI talk over loopback,
where that stall would be most of every request.
"""

from __future__ import annotations

import socket

import httpx

_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def transport(**kwargs: object) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(socket_options=_OPTIONS, **kwargs)  # type: ignore[arg-type]


def async_transport(**kwargs: object) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(socket_options=_OPTIONS, **kwargs)  # type: ignore[arg-type]

"""Read timeouts for the local gateway's HTTP server, as a managed front end (API Gateway, CloudFront) has.

uvicorn bounds the idle time between requests on a kept-alive connection, but not the time a client takes to send
a request's headers: a client that sends one header byte every few seconds holds its connection (and a slot)
forever. `guarded(protocol)` is uvicorn's HTTP protocol class with a timer armed when a connection opens and after
each response: a request whose headers have not all arrived when it fires closes the connection. The body has its
own bound in the gateway (`Gateway.body_timeout_s`).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

#: Seconds a client has to send a request's line and headers.
HEADER_TIMEOUT_S = 10.0


def guarded(base: type[Any], timeout_s: float = HEADER_TIMEOUT_S) -> type[Any]:
    """`base` (uvicorn's `HttpToolsProtocol` or `H11Protocol`) with the header read timeout."""

    class HeaderTimeout(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            waiting_on = self.cycle  # a new request's headers replace it (uvicorn's RequestResponseCycle)
            self._header_timer = asyncio.get_running_loop().call_later(timeout_s, self._expire, waiting_on)

        def _expire(self, waiting_on: Any) -> None:
            if self.cycle is waiting_on and not self.transport.is_closing():
                self.transport.close()  # no complete request line and headers in time

    HeaderTimeout.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeout


def protocol(timeout_s: float = HEADER_TIMEOUT_S) -> type[Any]:
    """The HTTP protocol class uvicorn would pick (httptools where installed, else h11), guarded."""
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return guarded(HttpToolsProtocol, timeout_s)
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return guarded(H11Protocol, timeout_s)

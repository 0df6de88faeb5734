"""A lean closed-loop load generator: N keep-alive connections on one asyncio loop, each sending a
pre-encoded request and waiting for its answer. It takes little CPU, so on a small shared machine the
server under test keeps the cores."""

from __future__ import annotations

import asyncio
import time

import httpx


def load(url: str, path: str, body: bytes | list[bytes], *, clients: int, seconds: float,
         headers: dict[str, str] | None = None) -> tuple[float, list[float], dict[int, int]]:
    """Requests per second, each latency (s), and the count of each status code. With a list of bodies, each
    client sends them in turn, starting at its own offset."""
    bodies = body if isinstance(body, list) else [body]
    return asyncio.run(_load(url, path, bodies, clients=clients, seconds=seconds, headers=headers or {}))


async def _load(url: str, path: str, bodies: list[bytes], *, clients: int, seconds: float,
                headers: dict[str, str]) -> tuple[float, list[float], dict[int, int]]:
    parsed = httpx.URL(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [(f"POST {path} HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Type: application/json\r\n{extra}"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds

    async def client(offset: int) -> None:
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        sent = offset
        try:
            while time.monotonic() < stop:
                start = time.perf_counter()
                writer.write(requests[sent % len(requests)])
                sent += 1
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return len(latencies) / (time.monotonic() - began), latencies, statuses

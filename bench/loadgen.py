"""A lean closed-loop load generator: N keep-alive connections on one asyncio loop, each sending a
pre-encoded request and waiting for its answer. It takes little CPU, so on a small shared machine the
server under test keeps the cores."""

from __future__ import annotations

import asyncio
import time

import httpx


async def _read_body(reader: asyncio.StreamReader) -> None:
    """Skip an answer's headers and body (Content-Length or chunked, as every server here sends)."""
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return
    while size := int((await reader.readline()).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readline()


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
                await _read_body(reader)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return len(latencies) / (time.monotonic() - began), latencies, statuses

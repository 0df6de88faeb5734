"""`inferstack load`: a load generator for a running stack, local or deployed.

Closed loop (`--concurrency N`: N clients, each sends when its last answer arrived) or open loop (`--rate R`:
R requests a second whatever the answers, as real traffic arrives). A mix of predict calls and job
submissions (`--jobs 0.2`: a fifth are jobs). It reports throughput, p50/p95/p99 latency, errors and 429s,
shows a progress line while it runs, and writes a PNG with latency over time and its histogram.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inferstack_infra.nodelay import async_transport


@dataclass
class Sample:
    at: float  # seconds since the start
    latency_s: float
    status: int  # 0: no answer (connection error or timeout)
    kind: str  # "predict" or "job"
    cache: str | None = None  # the answer's x-cache (hit, miss), where the model caches
    degraded: str | None = None  # the answer's x-degraded (budget, circuit-open, unavailable)


def is_ok(s: Sample) -> bool:
    return 200 <= s.status < 300


def is_throttled(s: Sample) -> bool:
    return s.status == 429


def is_error(s: Sample) -> bool:
    return s.status == 0 or (s.status >= 400 and s.status != 429)


@dataclass
class LoadResult:
    duration_s: float
    samples: list[Sample] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ok = sorted(s.latency_s for s in self.samples if is_ok(s))
        if not ok:
            return float("nan")
        return ok[min(len(ok) - 1, int(q / 100 * len(ok)))]

    @property
    def throughput(self) -> float:
        return self.count(is_ok) / self.duration_s

    def count(self, predicate: Callable[[Sample], bool]) -> int:
        return sum(1 for s in self.samples if predicate(s))

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.samples),
            "throughput_per_s": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p95_ms": round(self.percentile(95) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "ok": self.count(is_ok),
            "throttled_429": self.count(is_throttled),
            "errors": self.count(is_error),
            "predict": self.count(lambda s: s.kind == "predict"),
            "jobs": self.count(lambda s: s.kind == "job"),
            "cache_hits": self.count(lambda s: s.cache == "hit"),
            "cache_misses": self.count(lambda s: s.cache == "miss"),
            "degraded": self.count(lambda s: s.degraded is not None),
        }


def example_inputs(model_info: dict[str, Any], rows: int = 1) -> dict[str, Any]:
    """Inputs that fit the model's signature: random numbers in each fixed shape (symbolic dims: 1 and
    `rows` for the batch axis). A model with a handler: the first example of its request schema."""
    examples = (model_info.get("request_schema") or {}).get("examples") or []
    if examples:
        example: dict[str, Any] = examples[0]
        return example
    rnd = random.Random(0)

    def build(shape: list[Any], dtype: str, axis: int = 0) -> Any:
        if not shape:
            return "" if dtype == "str" else (rnd.random() > 0.5 if dtype == "bool" else round(rnd.random(), 3))
        n = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else (rows if axis == 0 else 1)
        return [build(shape[1:], dtype, axis + 1) for _ in range(n)]

    out: dict[str, Any] = {}
    for spec in model_info["inputs"]:
        value = build(spec["shape"], spec["dtype"])
        if spec["dtype"].startswith(("int", "uint")):
            value = _as_int(value)
        out[spec["name"]] = value
    return out


def _as_int(value: Any) -> Any:
    return [_as_int(v) for v in value] if isinstance(value, list) else int(value * 10)


class LoadRun:
    def __init__(self, url: str, api_key: str, model: str, inputs: Any, *, jobs_fraction: float = 0.0,
                 timeout_s: float = 30) -> None:
        self.url, self.model, self.inputs = url.rstrip("/"), model, inputs
        self.headers = {"x-api-key": api_key}
        self.jobs_fraction, self.timeout_s = jobs_fraction, timeout_s
        self.rnd = random.Random(1)

    async def _one(self, client: httpx.AsyncClient, began: float, result: LoadResult) -> None:
        is_job = self.rnd.random() < self.jobs_fraction
        path = "/v1/jobs" if is_job else f"/v1/models/{self.model}/predict"
        body = {"model": self.model, "inputs": self.inputs} if is_job else {"inputs": self.inputs}
        start = time.perf_counter()
        cache = degraded = None
        try:
            response = await client.post(self.url + path, json=body, headers=self.headers)
            status, cache, degraded = response.status_code, response.headers.get("x-cache"), \
                response.headers.get("x-degraded")
        except httpx.HTTPError:
            status = 0
        result.samples.append(Sample(start - began, time.perf_counter() - start, status,
                                     "job" if is_job else "predict", cache, degraded))

    async def run(self, duration_s: float, *, concurrency: int | None = None, rate: float | None = None,
                  progress: bool = True) -> LoadResult:
        result = LoadResult(duration_s)
        limits = httpx.Limits(max_connections=max(concurrency or 0, 64))
        async with httpx.AsyncClient(timeout=self.timeout_s, transport=async_transport(limits=limits)) as client:
            began = time.perf_counter()
            stop = began + duration_s
            reporter = asyncio.create_task(self._progress(result, began, duration_s)) if progress else None
            if rate:
                tasks: set[asyncio.Task[None]] = set()
                n = 0
                while (now := time.perf_counter()) < stop:
                    task = asyncio.create_task(self._one(client, began, result))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    n += 1
                    await asyncio.sleep(max(0.0, began + n / rate - now))
                if tasks:
                    await asyncio.wait(tasks)
            else:
                async def worker() -> None:
                    while time.perf_counter() < stop:
                        await self._one(client, began, result)

                await asyncio.gather(*(worker() for _ in range(concurrency or 1)))
            result.duration_s = time.perf_counter() - began
            if reporter:
                reporter.cancel()
                self._print_progress(result, began, duration_s, final=True)
        return result

    async def _progress(self, result: LoadResult, began: float, duration_s: float) -> None:
        while True:
            self._print_progress(result, began, duration_s)
            await asyncio.sleep(0.25)

    @staticmethod
    def _print_progress(result: LoadResult, began: float, duration_s: float, final: bool = False) -> None:
        elapsed = min(duration_s, time.perf_counter() - began)
        done = int(30 * elapsed / duration_s)
        recent = [s for s in result.samples if s.at > elapsed - 1]
        line = (f"\r[{'#' * done}{'.' * (30 - done)}] {elapsed:5.1f}/{duration_s:.0f} s  {len(result.samples):6d} req  "
                f"{len(recent):5d} req/s  429: {result.count(is_throttled)}  errors: {result.count(is_error)}")
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()


def plot(result: LoadResult, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (over_time, histogram) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"ok": "#2a9d8f", "429": "#e9c46a", "error": "#e76f51"}
    for label, pick in (("ok", is_ok), ("429", is_throttled), ("error", is_error)):
        picked = [s for s in result.samples if pick(s)]
        if picked:
            over_time.scatter([s.at for s in picked], [s.latency_s * 1000 for s in picked], s=4,
                              color=colors[label], label=f"{label} ({len(picked)})", alpha=0.6)
    over_time.set_xlabel("time since start (s)")
    over_time.set_ylabel("latency (ms)")
    over_time.set_title("latency over time")
    over_time.legend(loc="upper right")
    ok = [s.latency_s * 1000 for s in result.samples if is_ok(s)]
    if ok:
        histogram.hist(ok, bins=50, color=colors["ok"])
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            value = result.percentile(q) * 1000
            histogram.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.1f} ms")
        histogram.legend()
    histogram.set_xlabel("latency (ms)")
    histogram.set_ylabel("requests")
    histogram.set_title("latency histogram (2xx)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

"""`inferstack load --jobs-only`: a soak of the jobs tier on a running stack, local or deployed.

`concurrency` clients submit jobs back to back (a `count` of them, or for a `duration`); a 429 is honoured
(`Retry-After`, then the same submission again). Once the last submission is answered, pollers read each job
(`GET /v1/jobs/{id}`, each at most every `poll_interval_s`) until every one ended (the drain). Times to result
come from the stack's own timestamps (`created_at` to `finished_at`), so that how often the client polls
changes neither them nor, by polling during the submissions, the load being measured. It reports the
submission latency (p50/p95/p99, and p99 of the first vs the last 200 submissions: a store that slows as it
grows shows there), the time from submission to a terminal state (p50/p95/p99), jobs per second end to end
(from the first job created to the last finished), the drain after the last submission, the errors by kind,
and a plot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inferstack_infra.nodelay import async_transport

TERMINAL = ("succeeded", "failed")
#: The longest `Retry-After` a client waits before submitting again.
MAX_RETRY_AFTER_S = 10.0


@dataclass
class Submission:
    index: int
    at: float  # seconds since the start
    latency_s: float  # of the answer that ended the submission (the last try after 429s)
    status: int  # 0: no answer (connection error, timeout)
    throttled: int = 0  # 429s answered before it
    job_id: str | None = None


@dataclass
class Ended:
    job_id: str
    submitted_at: float  # seconds since the start (the stack's created_at, on the client's time line)
    ended_at: float  # the stack's finished_at, on the same time line
    status: str


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value * 1000, 1)


@dataclass
class SoakResult:
    submissions: list[Submission] = field(default_factory=list)
    ended: dict[str, Ended] = field(default_factory=dict)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    submit_s: float = 0.0  # from the first submission to the last answer
    total_s: float = 0.0  # from the first submission to the end of the drain
    pending: int = 0  # accepted jobs not seen terminal when the drain gave up

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.submissions, key=lambda s: s.index)
        accepted = [s for s in ordered if s.job_id]
        latencies = [s.latency_s for s in accepted]
        to_result = [e.ended_at - e.submitted_at for e in self.ended.values()]
        last_end = max((e.ended_at for e in self.ended.values()), default=math.nan)
        first = min((e.submitted_at for e in self.ended.values()), default=math.nan)
        first_200, last_200 = latencies[:200], latencies[-200:]
        errors = dict(self.errors)
        failed = sum(1 for e in self.ended.values() if e.status == "failed")
        if failed:
            errors["job failed"] = failed
        if self.pending:
            errors["not terminal"] = self.pending
        return {
            "submitted": len(ordered),
            "accepted": len(accepted),
            "throttled_429": sum(s.throttled for s in ordered),
            "terminal": len(self.ended),
            "succeeded": len(self.ended) - failed,
            "submit_per_s": round(len(accepted) / self.submit_s, 1) if self.submit_s else None,
            "submit_p50_ms": _ms(percentile(latencies, 50)),
            "submit_p95_ms": _ms(percentile(latencies, 95)),
            "submit_p99_ms": _ms(percentile(latencies, 99)),
            "submit_p99_first_200_ms": _ms(percentile(first_200, 99)),
            "submit_p99_last_200_ms": _ms(percentile(last_200, 99)),
            "result_p50_s": round(percentile(to_result, 50), 2) if to_result else None,
            "result_p95_s": round(percentile(to_result, 95), 2) if to_result else None,
            "result_p99_s": round(percentile(to_result, 99), 2) if to_result else None,
            "jobs_per_s": round(len(self.ended) / (last_end - first), 1) if self.ended and last_end > first else None,
            "drain_s": round(max(0.0, last_end - self.submit_s), 1) if self.ended else None,
            "total_s": round(self.total_s, 1),
            "errors": errors,
            "ok": not errors,
        }


class JobsSoak:
    def __init__(self, url: str, api_key: str, model: str, inputs: Any, *, timeout_s: float = 30,
                 poll_interval_s: float = 0.5, webhook_url: str | None = None) -> None:
        self.url, self.model, self.inputs = url.rstrip("/"), model, inputs
        self.headers = {"x-api-key": api_key}
        self.timeout_s, self.poll_interval_s, self.webhook_url = timeout_s, poll_interval_s, webhook_url
        self._pending: collections.deque[tuple[str, float, float]] = collections.deque()  # id, submitted, polled

    async def _submit(self, client: httpx.AsyncClient, index: int, began: float, result: SoakResult) -> None:
        body: dict[str, Any] = {"model": self.model, "inputs": self.inputs}
        if self.webhook_url:
            body["webhook"] = {"url": self.webhook_url}
        at = time.perf_counter() - began
        throttled = 0
        while True:
            start = time.perf_counter()
            try:
                response = await client.post(self.url + "/v1/jobs", json=body, headers=self.headers)
            except httpx.TimeoutException:
                result.errors["timeout"] += 1
                result.submissions.append(Submission(index, at, time.perf_counter() - start, 0, throttled))
                return
            except httpx.HTTPError as exc:
                result.errors[f"connection ({type(exc).__name__})"] += 1
                result.submissions.append(Submission(index, at, time.perf_counter() - start, 0, throttled))
                return
            latency = time.perf_counter() - start
            if response.status_code == 429:
                throttled += 1
                await asyncio.sleep(min(MAX_RETRY_AFTER_S, _retry_after(response)))
                continue
            job_id = None
            if response.status_code == 202:
                job_id = response.json().get("job_id")
                self._pending.append((job_id, at, 0.0))
            else:
                result.errors[f"http {response.status_code}"] += 1
            result.submissions.append(Submission(index, at, latency, response.status_code, throttled, job_id))
            return

    async def _poll(self, client: httpx.AsyncClient, began_wall: float, result: SoakResult,
                    submitting: asyncio.Event) -> None:
        while submitting.is_set():  # reading jobs meanwhile would add to the load being measured
            await asyncio.sleep(0.05)
        while self._pending:
            job_id, submitted_at, polled = self._pending.popleft()
            now = time.perf_counter()
            if now - polled < self.poll_interval_s:  # the oldest was read just now: every job was
                self._pending.appendleft((job_id, submitted_at, polled))
                await asyncio.sleep(self.poll_interval_s - (now - polled))
                continue
            job: dict[str, Any] = {}
            try:
                response = await client.get(f"{self.url}/v1/jobs/{job_id}", headers=self.headers)
                if response.status_code == 200:
                    job = response.json()
                elif response.status_code == 429:  # the plan's rate: read it again later, as told
                    await asyncio.sleep(min(MAX_RETRY_AFTER_S, _retry_after(response)))
                else:
                    result.errors[f"poll http {response.status_code}"] += 1
            except (httpx.HTTPError, ValueError):
                result.errors["poll connection"] += 1
            if job.get("status") in TERMINAL and job.get("finished_at") and job.get("created_at"):
                result.ended[job_id] = Ended(job_id, _epoch(job["created_at"]) - began_wall,
                                             _epoch(job["finished_at"]) - began_wall, job["status"])
            else:
                self._pending.append((job_id, submitted_at, time.perf_counter()))

    async def run(self, *, count: int | None = None, duration_s: float | None = None, concurrency: int = 16,
                  pollers: int | None = None, drain_timeout_s: float = 300, progress: bool = True) -> SoakResult:
        if not count and not duration_s:
            raise ValueError("give a count or a duration of submissions")
        result = SoakResult()
        limits = httpx.Limits(max_connections=concurrency + (pollers or 0) + 8)
        async with httpx.AsyncClient(timeout=self.timeout_s, transport=async_transport(limits=limits)) as client:
            began, began_wall = time.perf_counter(), time.time()
            submitting = asyncio.Event()
            submitting.set()
            next_index = iter(range(count or sys.maxsize))

            async def submitter() -> None:
                for index in next_index:
                    if duration_s and time.perf_counter() - began >= duration_s:
                        return
                    await self._submit(client, index, began, result)

            polling = [asyncio.create_task(self._poll(client, began_wall, result, submitting))
                       for _ in range(pollers or concurrency)]
            reporter = asyncio.create_task(self._progress(result, began)) if progress else None
            await asyncio.gather(*(submitter() for _ in range(concurrency)))
            result.submit_s = time.perf_counter() - began
            submitting.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*polling), drain_timeout_s)
            result.pending = len(self._pending)
            result.total_s = time.perf_counter() - began
            if reporter:
                reporter.cancel()
                self._print_progress(result, began, final=True)
        return result

    async def _progress(self, result: SoakResult, began: float) -> None:
        while True:
            self._print_progress(result, began)
            await asyncio.sleep(0.5)

    def _print_progress(self, result: SoakResult, began: float, final: bool = False) -> None:
        elapsed = time.perf_counter() - began
        line = (f"\r{elapsed:6.1f} s  submitted {len(result.submissions):6d}  ended {len(result.ended):6d}  "
                f"pending {len(self._pending):6d}  errors {sum(result.errors.values()):4d}")
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()


def plot(result: SoakResult, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, to_result, progress) = plt.subplots(1, 3, figsize=(16, 4.5))
    ok = [s for s in result.submissions if s.job_id]
    bad = [s for s in result.submissions if not s.job_id]
    latency.scatter([s.at for s in ok], [s.latency_s * 1000 for s in ok], s=4, color="#2a9d8f",
                    label=f"202 ({len(ok)})", alpha=0.6)
    if bad:
        latency.scatter([s.at for s in bad], [s.latency_s * 1000 for s in bad], s=6, color="#e76f51",
                        label=f"error ({len(bad)})")
    latency.set_xlabel("time since start (s)")
    latency.set_ylabel("submission latency (ms)")
    latency.set_title("POST /v1/jobs latency")
    latency.legend(loc="upper left")
    waits = [e.ended_at - e.submitted_at for e in result.ended.values()]
    if waits:
        to_result.hist(waits, bins=50, color="#264653")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            to_result.axvline(percentile(waits, q), color="black", linestyle=style,
                              label=f"p{q} {percentile(waits, q):.2f} s")
        to_result.legend()
    to_result.set_xlabel("submission to terminal state (s)")
    to_result.set_ylabel("jobs")
    to_result.set_title("time to result")
    progress.plot(sorted(s.at for s in ok), range(1, len(ok) + 1), label="accepted", color="#2a9d8f")
    progress.plot(sorted(e.ended_at for e in result.ended.values()), range(1, len(result.ended) + 1),
                  label="terminal", color="#264653")
    progress.set_xlabel("time since start (s)")
    progress.set_ylabel("jobs")
    progress.set_title("submitted vs ended")
    progress.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

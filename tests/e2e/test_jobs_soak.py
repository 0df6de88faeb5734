"""A soak of the jobs tier at a size CI affords: 300 jobs from 16 concurrent clients against `inferstack dev`
(`inferstack load --jobs-only` does the same at any size; `make bench` reports its rates).

What must hold (rates and latencies are the benchmark's, never asserted here): every submission answered 202
(or 429, then 202), never a 5xx; every job terminal, exactly once (one webhook per job, one attempt each);
no traceback in the stack's log."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferstack_infra.local.webhook_receiver import WebhookReceiver
from inferstack_infra.soak import JobsSoak
from tests.e2e.conftest import PRO_KEY, RunningStack, eventually, start_dev, stop_dev

pytestmark = pytest.mark.e2e
JOBS, CLIENTS = 300, 16


@pytest.fixture(scope="module")
def soak_stack(tmp_path_factory: pytest.TempPathFactory, iris_model: Path) -> Iterator[tuple[RunningStack, str]]:
    d = tmp_path_factory.mktemp("soak")
    manifest = d / "inferstack.toml"
    manifest.write_text(f"""
name = "soak"
[api]
throttle = {{ rate = 5000, burst = 5000 }}
[[api.plans]]
name = "load"
throttle = {{ rate = 5000, burst = 5000 }}
[[models]]
name = "iris"
path = "{iris_model}"
tier = "light"
""")
    stack = start_dev(d / "dev.log", "--allow-loopback-webhooks", "--api-key", f"{PRO_KEY}:load", manifest=manifest)
    secret = re.search(r"signed with (whsec_\S+)", stack.log.read_text())
    assert secret, stack.log.read_text()
    yield stack, secret.group(1)
    stop_dev(stack)


def test_soak_every_job_ends_once_without_5xx_or_traceback(soak_stack: tuple[RunningStack, str]) -> None:
    stack, secret = soak_stack
    receiver = WebhookReceiver(secret).start()
    try:
        # GIVEN 300 jobs of 4 rows, each with a webhook, from 16 clients back to back
        soak = JobsSoak(stack.url, PRO_KEY, "iris", {"features": [[5.1, 3.5, 1.4, 0.2]] * 4},
                        webhook_url=receiver.url)
        result = asyncio.run(soak.run(count=JOBS, concurrency=CLIENTS, drain_timeout_s=300, progress=False))
        summary = result.summary()
        print(summary)
        # THEN every submission was accepted (429s were retried as told), none answered 5xx or not at all
        statuses = Counter(s.status for s in result.submissions)
        assert statuses == {202: JOBS}, statuses
        assert not result.errors, result.errors
        # every job ended, and succeeded
        assert len(result.ended) == JOBS and {e.status for e in result.ended.values()} == {"succeeded"}
        # exactly once: one signed webhook per job, no job finished twice
        ids = {s.job_id for s in result.submissions}
        eventually(lambda: len(receiver.deliveries) >= JOBS, timeout_s=120)
        per_job = Counter(d.webhook_id.removeprefix("msg_") for d in receiver.verified())
        assert set(per_job) == ids and set(per_job.values()) == {1}
        # and the stack logged no traceback
        log = stack.log.read_text()
        assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    finally:
        receiver.stop()

"""The jobs tier's settings, read from the environment that the CDK app or `inferstack dev` sets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from inferstack import env


@dataclass(frozen=True)
class JobsSettings:
    table: str
    bucket: str
    queues: dict[str, str] = field(default_factory=dict)
    webhook_queue: str = ""
    secret_id: str = ""
    max_queue_depth: int = 10000
    result_ttl_days: int = 7
    webhook_max_attempts: int = 8
    webhook_timeout_s: float = 15
    webhook_backoff_s: float = 30
    allow_loopback_webhooks: bool = False
    #: `inferstack dev`: the file listing the stack's own ports (`refused_ports`).
    stack_ports_file: str | None = None

    @classmethod
    def from_env(cls) -> JobsSettings:
        e = os.environ
        return cls(
            table=e[env.JOBS_TABLE], bucket=e[env.JOBS_BUCKET], queues=json.loads(e.get(env.JOB_QUEUES) or "{}"),
            webhook_queue=e.get(env.WEBHOOK_QUEUE, ""), secret_id=e.get(env.WEBHOOK_SECRET_ID, ""),
            max_queue_depth=int(e.get(env.MAX_QUEUE_DEPTH) or 10000),
            result_ttl_days=int(e.get(env.RESULT_TTL_DAYS) or 7),
            webhook_max_attempts=int(e.get(env.WEBHOOK_MAX_ATTEMPTS) or 8),
            webhook_timeout_s=float(e.get(env.WEBHOOK_TIMEOUT_S) or 15),
            webhook_backoff_s=float(e.get(env.WEBHOOK_BACKOFF_S) or 30),
            allow_loopback_webhooks=e.get(env.ALLOW_LOOPBACK_WEBHOOKS) == "1",
            stack_ports_file=e.get(env.STACK_PORTS_FILE) or None,
        )

    def refused_ports(self) -> frozenset[int]:
        """The loopback ports of the local stack itself (its AWS emulator, function runtimes, model servers,
        gateway), read afresh each time (a restarted runtime has a new port); none outside `inferstack dev`."""
        if not (self.allow_loopback_webhooks and self.stack_ports_file):
            return frozenset()
        try:
            return frozenset(int(p) for p in json.loads(Path(self.stack_ports_file).read_text()))
        except (OSError, ValueError, TypeError):
            return frozenset()

    @classmethod
    def configured(cls) -> bool:
        return bool(os.environ.get(env.JOBS_TABLE))

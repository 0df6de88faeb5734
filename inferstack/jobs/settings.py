"""The jobs tier's settings, read from the environment that the CDK app or `inferstack dev` sets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

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
        )

    @classmethod
    def configured(cls) -> bool:
        return bool(os.environ.get(env.JOBS_TABLE))

"""Bulk scoring's settings, read from the environment that the CDK app or `inferstack dev` sets."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from inferstack import env


@dataclass(frozen=True)
class BatchSettings:
    #: The stack's own batch bucket: uploads, chunk plans and the Map's result files; always readable and
    #: writable, and the default output location.
    bucket: str
    state_machines: dict[str, str] = field(default_factory=dict)
    input_buckets: tuple[str, ...] = ()
    output_buckets: tuple[str, ...] = ()
    rows_per_chunk: int = 10_000

    @classmethod
    def from_env(cls) -> BatchSettings:
        e = os.environ
        return cls(bucket=e[env.BATCH_BUCKET], state_machines=json.loads(e.get(env.BATCH_STATE_MACHINES) or "{}"),
                   input_buckets=tuple(json.loads(e.get(env.BATCH_INPUT_BUCKETS) or "[]")),
                   output_buckets=tuple(json.loads(e.get(env.BATCH_OUTPUT_BUCKETS) or "[]")),
                   rows_per_chunk=int(e.get(env.BATCH_ROWS_PER_CHUNK) or 10_000))

    @classmethod
    def configured(cls) -> bool:
        return bool(os.environ.get(env.BATCH_BUCKET))

    def may_read(self, bucket: str) -> bool:
        return bucket == self.bucket or bucket in self.input_buckets

    def may_write(self, bucket: str) -> bool:
        return bucket == self.bucket or bucket in self.output_buckets

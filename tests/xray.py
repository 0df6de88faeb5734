"""X-Ray as on Lambda, in memory: tracing on (`LAMBDA_TASK_ROOT`, a sampled trace header), the SDK's recorder
with Lambda's context (facade segment) and an emitter that keeps what would go to the daemon."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


class MemoryEmitter:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity.to_dict())

    def set_daemon_address(self, address: str | None) -> None:
        pass

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000

    def subsegments(self, name: str) -> list[dict[str, Any]]:
        """The subsegments named `name` sent, in order."""
        return [e for e in self.sent if e.get("name") == name]


@pytest.fixture
def xray_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryEmitter]:
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.lambda_launcher import LambdaContext

    from inferstack.observability import xray

    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_HEADER)
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.delenv("AWS_XRAY_SDK_ENABLED", raising=False)
    saved = xray_recorder.context, xray_recorder.emitter, xray_recorder.streaming_threshold
    emitter = MemoryEmitter()
    xray.reset()
    assert xray.tracer() is not None  # creates Powertools' Tracer: it may switch the SDK off or on; set it after
    global_sdk_config.set_sdk_enabled(True)
    xray_recorder.context, xray_recorder.emitter, xray_recorder.streaming_threshold = LambdaContext(), emitter, 0
    try:
        yield emitter
    finally:
        xray_recorder.context, xray_recorder.emitter, xray_recorder.streaming_threshold = saved
        xray.reset()

"""BentoML with its adaptive batching: a batchable API (`max_batch_size`, `max_latency_ms`), one worker.
Run with `bentoml serve bentoml_service:MiniLM`. A batchable API takes a list per request: the body is
`{"inputs": [{"text": [<one sentence>]}]}` and the answer a list of one."""

from __future__ import annotations

from typing import Any

import bentoml
from minilm import MAX_BATCH_SIZE, Embedder, answer, text_of


@bentoml.service(workers=1, traffic={"timeout": 60})
class MiniLM:
    def __init__(self) -> None:
        self.embedder = Embedder()

    @bentoml.api(route="/invocations", batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=10_000)
    def invocations(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        vectors, tokens = self.embedder.embed([text_of({"inputs": i}) for i in inputs])
        return [answer(v, t) for v, t in zip(vectors, tokens, strict=True)]

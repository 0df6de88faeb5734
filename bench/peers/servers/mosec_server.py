"""mosec with its dynamic batching: one worker stage, `max_batch_size` and `max_wait_time`."""

from __future__ import annotations

import os
import sys
from typing import Any

from minilm import MAX_BATCH_SIZE, MAX_DELAY_MS, PORT, Embedder, answer, text_of
from mosec import Server, Worker


class MiniLM(Worker):
    def __init__(self) -> None:
        super().__init__()
        self.embedder = Embedder()

    def forward(self, data: list[Any]) -> list[dict[str, Any]]:
        vectors, tokens = self.embedder.embed([text_of(d) for d in data])
        return [answer(v, t) for v, t in zip(vectors, tokens, strict=True)]


if __name__ == "__main__":
    sys.argv += ["--address", "127.0.0.1", "--port", str(PORT), "--log-level", "warning"]
    server = Server()
    workers = int(os.environ.get("PEER_WORKERS", "1"))
    server.append_worker(MiniLM, num=workers, max_batch_size=MAX_BATCH_SIZE, max_wait_time=int(MAX_DELAY_MS),
                         route="/invocations")
    server.run()

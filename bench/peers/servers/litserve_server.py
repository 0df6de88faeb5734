"""LitServe with its dynamic batching: `LitAPI(max_batch_size, batch_timeout)`, one inference worker.
(No `from __future__ import annotations`: LitServe reads decode_request's annotation to type the route.)"""

from typing import Any

import litserve as ls
from minilm import MAX_BATCH_SIZE, MAX_DELAY_MS, PORT, Embedder, answer, text_of


class MiniLM(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.embedder = Embedder()

    def decode_request(self, request: dict) -> str:  # type: ignore[type-arg]
        return text_of(request)

    def predict(self, texts: list[str]) -> list[tuple[Any, int]]:
        vectors, tokens = self.embedder.embed(list(texts))
        return list(zip(vectors, tokens, strict=True))

    def encode_response(self, output: tuple[Any, int]) -> dict[str, Any]:
        return answer(*output)


if __name__ == "__main__":
    api = MiniLM(max_batch_size=MAX_BATCH_SIZE, batch_timeout=MAX_DELAY_MS / 1000, api_path="/invocations")
    server = ls.LitServer(api, accelerator="auto", workers_per_device=1)
    server.run(host="127.0.0.1", port=PORT, log_level="warning", generate_client_file=False, num_api_servers=1)

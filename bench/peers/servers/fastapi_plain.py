"""A plain FastAPI server without batching: what a user writes first. One `def` route (FastAPI runs it in
its thread pool), one inference call per request, on uvicorn with its defaults."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI
from minilm import PORT, Embedder, answer, text_of

embedder = Embedder()
app = FastAPI()


@app.post("/invocations")
def invocations(body: dict[str, Any]) -> dict[str, Any]:
    vectors, tokens = embedder.embed([text_of(body)])
    return answer(vectors[0], tokens[0])


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)

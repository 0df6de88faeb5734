"""all-MiniLM-L6-v2's handler: texts in, one 384-dimensional unit vector per text out.

    POST /v1/models/minilm/predict  {"inputs": {"text": ["A man is eating food.", "..."]}}
    -> {"model": "minilm", "version": "...", "outputs": {"embeddings": [[...384 floats], ...], "tokens": [8, ...]}}

Tokenization is the checkpoint's own `tokenizer.json` (WordPiece, lower-cased) run by the `tokenizers`
library, truncated at 256 tokens as sentence-transformers does for this model; the embedding is the mean of
the token vectors under the attention mask, L2-normalised. Cosine similarity is then a dot product.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer

#: sentence-transformers' `max_seq_length` for this model: longer texts are truncated (`tokens` says so).
MAX_TOKENS = 256
MAX_TEXTS = 128
#: Far beyond 256 tokens; a bound on the tokenizer's work per text.
MAX_CHARS = 20_000

tokenizer = Tokenizer.from_file(str(Path(__file__).with_name("tokenizer.json")))
tokenizer.enable_truncation(max_length=MAX_TOKENS)
# The texts of one request are padded to its longest; requests of different lengths are padded to a batch's
# longest where they run together (the manifest's `pad`). The attention mask keeps padding out of the result.
tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": ["A man is eating food.", "A man is eating a piece of bread."]}]})

    text: list[Annotated[str, Field(max_length=MAX_CHARS)]] = Field(
        min_length=1, max_length=MAX_TEXTS,
        description=f"The texts to embed (1 to {MAX_TEXTS}); each is truncated at {MAX_TOKENS} tokens.")


class Response(BaseModel):
    embeddings: list[list[float]] = Field(description="One 384-dimensional unit vector per text, in order.")
    tokens: list[int] = Field(description=f"Tokens per text, [CLS] and [SEP] included; {MAX_TOKENS} means the "
                              "text was truncated.")


def preprocess(body: Request) -> dict[str, np.ndarray]:
    encoded = tokenizer.encode_batch(body.text)
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def postprocess(outputs: dict[str, np.ndarray], body: Request, inputs: dict[str, np.ndarray]) -> Response:
    mask = inputs["attention_mask"][..., None].astype(np.float32)
    pooled = (outputs["last_hidden_state"] * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    unit = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return Response(embeddings=unit.tolist(), tokens=inputs["attention_mask"].sum(axis=1).tolist())

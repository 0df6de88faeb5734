"""The work every server in the peer benchmark does per text, identical for all of them: all-MiniLM-L6-v2's
tokenizer (truncated at 256 tokens, a batch padded to its longest text), one onnxruntime session with the same options
as inferstack's heavy container (as many intra-op threads as cores, no spinning, every graph optimization),
mean pooling under the attention mask and L2 normalisation. Runs in the peers' own virtualenv: it imports
nothing from inferstack.

Each server answers `POST` with the body `{"inputs": {"text": [<one sentence>]}}` and the JSON
`{"outputs": {"embeddings": [[384 floats]], "tokens": [n]}}`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODEL_DIR = Path(os.environ.get("PEER_MODEL_DIR", Path(__file__).resolve().parents[3] / "models" / "minilm"))
MODEL_FILE = Path(os.environ.get("PEER_MODEL_FILE", MODEL_DIR / "model.onnx"))
MAX_BATCH_SIZE = int(os.environ.get("PEER_MAX_BATCH_SIZE", "32"))
MAX_DELAY_MS = float(os.environ.get("PEER_MAX_DELAY_MS", "5"))
PORT = int(os.environ.get("PEER_PORT", "8080"))


def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("PEER_THREADS") or len(os.sched_getaffinity(0)))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] \
        if "CUDAExecutionProvider" in ort.get_available_providers() else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(MODEL_FILE), sess_options=options, providers=providers)


class Embedder:
    """Texts in, unit vectors out; `embed` runs any number of texts as one batch."""

    def __init__(self) -> None:
        self.tokenizer, self.session = tokenizer(), session()
        self.embed(["warm up"])

    def embed(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        (hidden,) = self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                             "token_type_ids": np.zeros_like(ids)})
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        unit = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return unit, mask.sum(axis=1).tolist()


def text_of(body: Any) -> str:
    """The one sentence of a request body (dict or JSON bytes)."""
    if isinstance(body, bytes | str):
        body = json.loads(body)
    (text,) = body["inputs"]["text"]
    return str(text)


def answer(vector: np.ndarray, tokens: int) -> dict[str, Any]:
    return {"outputs": {"embeddings": [vector.tolist()], "tokens": [tokens]}}

"""The sentence-embedding example (all-MiniLM-L6-v2) on this machine's CPU.

1. Latency per text at batch sizes 1, 8 and 32, through the whole handler path (`Predictor.predict`:
   request validation, tokenization, onnxruntime, mean pooling, normalisation, the response model), beside
   its reference, sentence-transformers' `encode` on PyTorch with the same weights and as many threads, where
   the optional `[reference]` extra is installed (set-up installs no PyTorch); otherwise beside onnxruntime's
   `session.run` alone on the same tokens, the floor the handler path adds to.
2. The heavy container serving it to 32 clients, each sending one text per request (texts of 8 to 20
   words), with dynamic batching on and off.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inferstack_infra.cost.measure import median_seconds

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 32
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "river", "bank", "while",
         "children", "play", "football", "in", "sunny", "park", "after", "school", "and", "parents", "watch",
         "from", "wooden", "benches"]


def texts(n: int, seed: int = 0) -> list[str]:
    """Sentences of 8 to 20 words, like search queries and short passages."""
    import random

    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 20))).capitalize() + "." for _ in range(n)]


def _pytorch_encoder() -> Callable[[list[str], int], Any] | None:
    """sentence-transformers' `encode` on PyTorch with as many threads as onnxruntime, if installed."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    from inferstack.inference.session import available_vcpus

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(available_vcpus())  # the same threads as onnxruntime's session
    reference = SentenceTransformer(str(ROOT / "models" / ".sources" / "all-MiniLM-L6-v2"), device="cpu",
                                    local_files_only=True)
    return lambda sample, batch: reference.encode(sample, normalize_embeddings=True, batch_size=batch)


def latency_rows(budget_s: float) -> list[dict[str, Any]]:
    from inferstack.inference.session import Predictor
    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog

    catalog = build_catalog(load_manifest(ROOT / "inferstack.toml"), bundled=False)
    predictor = Predictor.load(next(m for m in catalog.models if m.name == "minilm"), Path("/"))
    pytorch = _pytorch_encoder()
    handler = predictor.handler
    assert handler is not None  # minilm has one
    rows = []
    for batch in (1, 8, 32):
        sample = texts(batch, seed=batch)
        ours = median_seconds(lambda s=sample: predictor.predict({"text": s}), budget_s)  # type: ignore[misc]
        if pytorch is not None:
            theirs = median_seconds(lambda s=sample, b=batch: pytorch(s, b), budget_s)  # type: ignore[misc]
            baselines, targets = {"PyTorch": theirs / batch * 1000}, {"PyTorch": 1.0}
        else:
            feed = handler.preprocess(handler.parse({"text": sample}))
            floor = median_seconds(lambda f=feed: predictor.session.run(None, f), budget_s)  # type: ignore[misc]
            baselines, targets = {"session.run": floor / batch * 1000}, {}
        rows.append({"figure": f"minilm ms per text, batch {batch} (CPU)", "value": ours / batch * 1000,
                     "baselines": baselines, "targets": targets, "better": "lower"})
    return rows


def heavy_rows(seconds: float) -> list[dict[str, Any]]:
    from bench.heavy import serving
    from bench.loadgen import load
    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import stage_heavy_model

    manifest = load_manifest(ROOT / "inferstack.toml")
    model = manifest.model("minilm")
    bodies = [json.dumps({"inputs": {"text": [t]}}).encode() for t in texts(97, seed=7)]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = stage_heavy_model(model, manifest, build_catalog(manifest), Path(tmp) / "model",
                                      dependencies=False)
        for name in ("batching", "off"):
            with serving(model.name, model_dir, batching=name == "batching") as server:
                load(server.url, "/invocations", bodies, clients=CLIENTS, seconds=1)  # warm
                rate, _, statuses = load(server.url, "/invocations", bodies, clients=CLIENTS, seconds=seconds)
                if set(statuses) != {200}:
                    raise RuntimeError(f"the server answered {statuses}")
                results[name] = rate
    return [{"figure": f"minilm heavy texts/s, {CLIENTS} clients (CPU)", "value": results["batching"],
             "baselines": {"no batching": results["off"]}, "targets": {"no batching": 2.0}, "better": "higher"}]


def run(seconds: float = 8) -> list[dict[str, Any]]:
    return latency_rows(budget_s=seconds / 4) + heavy_rows(seconds)


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))

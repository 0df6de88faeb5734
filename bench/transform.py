"""The heavy container's JSON Lines path (what a Batch Transform job sends: MultiRecord bodies of many lines,
`inferstack.heavy.jsonlines`) against its predict path for the same texts, on one minilm container on this
machine: N texts (2,000 by default) as JSON Lines bodies of at most 6 MB, one line per text, through
`LocalTransform`'s packing, against predict bodies of 64 texts each, sent one after another. Same container,
run one after the other; the ratio is texts/s (JSON Lines) / texts/s (predict).

    python -m bench.transform [TEXTS]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from inferstack_infra.catalog import build_catalog
from inferstack_infra.local.sagemaker import ModelServer
from inferstack_infra.packaging import stage_heavy_model
from models.build_minilm import load_reference
from tests.functional.test_minilm import minilm_manifest


def main(n: int = 2000) -> None:
    base = load_reference()["texts"][:8]
    texts = [f"{base[i % len(base)]} (number {i})" for i in range(n)]
    manifest = minilm_manifest("heavy")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = stage_heavy_model(manifest.models[0], manifest, build_catalog(manifest), Path(tmp) / "model",
                                      dependencies=False)
        server = ModelServer("minilm", model_dir, log=lambda line: None)
        server.start()
        try:
            with httpx.Client(timeout=600) as client:
                client.post(f"{server.url}/invocations", json={"inputs": {"text": texts[:64]}})  # warm
                started = time.perf_counter()
                for i in range(0, n, 64):
                    assert client.post(f"{server.url}/invocations",
                                       json={"inputs": {"text": texts[i:i + 64]}}).status_code == 200
                predict_s = time.perf_counter() - started
                body = "".join(json.dumps({"id": i, "text": [t]}) + "\n" for i, t in enumerate(texts)).encode()
                assert len(body) < 6 * 1024 * 1024
                started = time.perf_counter()
                answer = client.post(f"{server.url}/invocations", content=body,
                                     headers={"Content-Type": "application/jsonlines"})
                jsonl_s = time.perf_counter() - started
                assert answer.status_code == 200 and answer.content.count(b"\n") == n
        finally:
            server.stop()
    print(json.dumps({"texts": n, "predict_texts_per_s": round(n / predict_s, 1),
                      "jsonlines_texts_per_s": round(n / jsonl_s, 1), "ratio": round(predict_s / jsonl_s, 2)}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)

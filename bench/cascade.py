"""Doing less work per answer, measured through `inferstack dev` (gateway, functions, the heavy container):

- the digits cascade on the held-out set (models/digits-heldout.json, 540 rows, 20 rows a request): accuracy of
  the light model alone, the heavy model alone and the cascade (min_confidence 0.8), the share of rows the light
  stage answered, and the mean time per row of each (request latency / rows, one client);
- the result cache on a replayed workload: requests for 1,000 distinct texts drawn by a Zipf law (s = 1.1) from
  minilm (heavy tier, cached): hit rate, p50 latency of hits against misses, and endpoint calls saved (every miss
  is one call; without the cache every request is).

`python -m bench.cascade` runs it alone (part of `make bench`).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.local import KEY, ROOT, _serve
from inferstack_infra.local.aws import free_port

MODELS = ROOT / "models"
ROWS_PER_REQUEST = 20
TEXTS = 1000
ZIPF_S = 1.1


def manifest(path: Path) -> None:
    path.write_text(f"""
name = "benchcascade"
[api]
throttle = {{ rate = 10000, burst = 5000 }}
[[api.plans]]
name = "bench"
throttle = {{ rate = 10000, burst = 5000 }}
[[models]]
name = "digits-light"
path = "{MODELS / 'digits-light.onnx'}"
tier = "light"
[[models]]
name = "digits-heavy"
path = "{MODELS / 'digits-heavy.onnx'}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
[[models]]
name = "minilm"
path = "{MODELS / 'minilm' / 'model.onnx'}"
handler = "{MODELS / 'minilm' / 'handler.py'}"
tier = "heavy"
instance_type = "ml.g5.xlarge"
cache = {{ ttl_s = 3600, max_entries = 4096 }}
[[cascades]]
name = "digits"
stages = ["digits-light", "digits-heavy"]
accept = {{ output = "probabilities", min_confidence = 0.8 }}
""")


def digits(client: httpx.Client) -> dict[str, dict[str, float]]:
    data = json.loads((MODELS / "digits-heldout.json").read_text())
    pixels, labels = data["pixels"], np.array(data["labels"])
    routes = {"light": "/v1/models/digits-light/predict", "heavy": "/v1/models/digits-heavy/predict",
              "cascade": "/v1/cascades/digits/predict"}
    out: dict[str, dict[str, float]] = {}
    for name, path in routes.items():
        for _warm in range(2):  # the first pass warms every process on the path; the second is measured
            predicted: list[int] = []
            stages: list[str] = []
            elapsed = 0.0
            for start in range(0, len(pixels), ROWS_PER_REQUEST):
                rows = pixels[start:start + ROWS_PER_REQUEST]
                began = time.perf_counter()
                answer = client.post(path, json={"inputs": {"pixels": rows}})
                elapsed += time.perf_counter() - began
                answer.raise_for_status()
                body = answer.json()
                predicted += body["outputs"]["label"]
                stages += body.get("stage", [name] * len(rows))
        out[name] = {"accuracy": float((np.array(predicted) == labels).mean() * 100),
                     "ms_per_row": elapsed * 1000 / len(pixels),
                     "light_share": 100 * sum(s == "digits-light" for s in stages) / len(stages)}
    return out


def zipf_replay(client: httpx.Client, requests: int, seed: int = 0) -> dict[str, float]:
    texts = [f"Request {i}: a sentence about topic {i % 37} and item {i * 7919 % 1000}." for i in range(TEXTS)]
    weights = 1 / np.arange(1, TEXTS + 1) ** ZIPF_S
    picks = np.random.default_rng(seed).choice(TEXTS, size=requests, p=weights / weights.sum())
    hits: list[float] = []
    misses: list[float] = []
    for i in picks:
        began = time.perf_counter()
        answer = client.post("/v1/models/minilm/predict", json={"inputs": {"text": [texts[int(i)]]}})
        took = (time.perf_counter() - began) * 1000
        answer.raise_for_status()
        (hits if answer.headers["x-cache"] == "hit" else misses).append(took)
    return {"requests": requests, "distinct": len(set(picks.tolist())), "hit_rate": 100 * len(hits) / requests,
            "p50_hit_ms": statistics.median(hits), "p50_miss_ms": statistics.median(misses),
            "endpoint_calls": len(misses)}


def measure(requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inferstack.toml"
        manifest(path)
        port = free_port()
        dev = _serve([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest", str(path), "--port",
                      str(port), "--api-key", f"{KEY}:bench"], f"http://127.0.0.1:{port}/v1/health", {})
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY}, timeout=60) as c:
                return {"digits": digits(c), "cache": zipf_replay(c, requests)}
        finally:
            dev.terminate()
            dev.wait(30)


def run(requests: int = 2000) -> list[dict[str, Any]]:
    m = measure(requests)
    d, cache = m["digits"], m["cache"]
    heavy = d["heavy"]["accuracy"]
    return [
        {"figure": "digits cascade accuracy %", "value": d["cascade"]["accuracy"],
         "baselines": {"heavy only": heavy, "light only": d["light"]["accuracy"]},
         "targets": {"heavy only": round(1 - 0.5 / heavy, 4)}, "better": "higher"},
        {"figure": "digits rows answered by light %", "value": d["cascade"]["light_share"],
         "baselines": {"target": 70.0}, "targets": {"target": 1.0}, "better": "higher"},
        {"figure": "digits ms per row, cascade", "value": d["cascade"]["ms_per_row"],
         "baselines": {"heavy only": d["heavy"]["ms_per_row"], "light only": d["light"]["ms_per_row"]},
         "targets": {}},
        {"figure": f"cache hit rate % (Zipf {ZIPF_S}, {TEXTS} texts)", "value": cache["hit_rate"],
         "baselines": {}, "targets": {}},
        {"figure": "minilm p50 ms, cache hit", "value": cache["p50_hit_ms"],
         "baselines": {"miss": cache["p50_miss_ms"]}, "targets": {"miss": 0.5}},
        {"figure": f"endpoint calls, {requests} requests", "value": cache["endpoint_calls"],
         "baselines": {"uncached": requests}, "targets": {}},
    ]


if __name__ == "__main__":
    from bench.__main__ import table

    rows = run(requests=500 if "--quick" in sys.argv else 2000)
    print(table(rows))

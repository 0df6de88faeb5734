"""Heavy container throughput at 32 concurrent clients: dynamic batching on vs off, side by side.

Both servers are the real container server (`python -m inferstack.heavy.server`) on this machine's CPU with
the synthetic MLP (10.5M parameters, `models/build_mlp.py`); each client sends one row per request, back to
back. Also reports p99 latency with batching against its bound: max_delay_ms plus the model's own time for a
full batch. (`bench/minilm.py` measures the example's heavy model, the sentence embedder.)
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.loadgen import load

if TYPE_CHECKING:
    from inferstack_infra.local.sagemaker import ModelServer

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 32


def _load(url: str, seconds: float) -> tuple[float, list[float]]:
    body = json.dumps({"inputs": np.random.default_rng(0).random((1, 512)).round(4).tolist()}).encode()
    rate, latencies, statuses = load(url, "/invocations", body, clients=CLIENTS, seconds=seconds)
    if set(statuses) != {200}:
        raise RuntimeError(f"the server answered {statuses}")
    return rate, latencies


def _full_batch_ms(max_batch_size: int) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(ROOT / "models" / "mlp.onnx"))
    x = np.random.default_rng(1).random((max_batch_size, 512), dtype=np.float32)
    session.run(None, {"features": x})
    times = []
    for _ in range(10):
        start = time.perf_counter()
        session.run(None, {"features": x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextlib.contextmanager
def serving(model: str, model_dir: Path, *, batching: bool) -> Iterator[ModelServer]:
    """The container server on a model directory, with its dynamic batching on or off (batches of one)."""
    from inferstack_infra.local.sagemaker import ModelServer

    env = {} if batching else {"INFERSTACK_MAX_BATCH_SIZE": "1", "INFERSTACK_MAX_DELAY_MS": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = ModelServer(model, model_dir, log=lambda line: None)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(seconds: float = 8) -> list[dict[str, Any]]:
    from inferstack.manifest import parse_manifest
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import stage_heavy_model

    manifest = parse_manifest({"name": "bench", "models": [{
        "name": "mlp", "path": "models/mlp.onnx", "tier": "heavy", "instance_type": "ml.g5.xlarge",
        "batching": {"max_batch_size": 32, "max_delay_ms": 5}}]}, root=ROOT)
    model = manifest.heavy_models[0]
    results: dict[str, tuple[float, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = stage_heavy_model(model, manifest, build_catalog(manifest), Path(tmp) / "model")
        for name in ("batching", "off"):
            with serving(model.name, model_dir, batching=name == "batching") as server:
                _load(server.url, 1)  # warm the connections and the model
                results[name] = _load(server.url, seconds)
    (on, on_lat), (off, off_lat) = results["batching"], results["off"]
    p99 = float(np.percentile(on_lat, 99) * 1000)
    bound = model.batching.max_delay_ms + _full_batch_ms(model.batching.max_batch_size)
    return [
        {"figure": f"heavy req/s, {CLIENTS} clients (CPU)", "value": on, "baselines": {"no batching": off},
         "targets": {"no batching": 3.0}, "better": "higher"},
        {"figure": "heavy p99 latency with batching (ms)", "value": p99,
         "baselines": {"delay+batch": bound, "no batching": float(np.percentile(off_lat, 99) * 1000)},
         "targets": {}, "better": "lower"},
    ]

"""Light tier: cold start (fresh process to first predict response) and warm time per request.

Three contenders, measured in the same run on the same model and the same API Gateway event:
  inferstack  functions/predict/handler.py (the deployed entry point)
  naive       bench/naive_app.py, a single-file FastAPI + Mangum + onnxruntime app
  floor       raw onnxruntime: import, load, run (cold); json.loads + np.array + session.run + json.dumps (warm)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "events" / "apiGatewayProxyEvent_predict.json"
MODEL = ROOT / "models" / "iris.onnx"

CONTEXT = ("class C:\n function_name='bench'; memory_limit_in_mb=1024; aws_request_id='r'\n"
           " invoked_function_arn='arn:aws:lambda:us-east-1:1:function:bench'\n"
           " def get_remaining_time_in_millis(self): return 10000\n")

COLD = {
    "inferstack": CONTEXT + (
        "import json\nevent = json.load(open({event!r}))\n"
        "import inferstack.functions.predict.handler as h\nr = h.handler(event, C())\n"
        "assert r['statusCode'] == 200, r\n"),
    "naive": CONTEXT + (
        "import json\nevent = json.load(open({event!r}))\n"
        "import bench.naive_app as h\nr = h.handler(event, C())\nassert r['statusCode'] == 200, r\n"),
    "floor": (
        "import json\nevent = json.load(open({event!r}))\n"
        "import numpy as np, onnxruntime as ort\ns = ort.InferenceSession({model!r})\n"
        "body = json.loads(event['body'])\n"
        "out = s.run(None, {{'features': np.array(body['inputs']['features'], dtype=np.float32)}})\n"
        "json.dumps([o.tolist() for o in out])\n"),
}


def _environment(catalog: Path) -> dict[str, str]:
    return {**os.environ, "INFERSTACK_CATALOG": str(catalog), "INFERSTACK_MODEL": "iris",
            "NAIVE_MODEL_PATH": str(MODEL), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "POWERTOOLS_METRICS_NAMESPACE": "bench", "PYTHONPATH": str(ROOT)}


def _lambda_like_path() -> tuple[str, str]:
    """The predict function's bundle and its layers, built for this machine from the same recipes and trim
    rules as for Lambda: what a fresh execution environment has on its path (plus bench/ for the naive app)."""
    from inferstack.manifest import load_manifest
    from inferstack.topology import functions
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import HOST_PLATFORMS, HOST_PYTHON, build_layer, stage_function

    manifest = load_manifest(ROOT / "inferstack.toml")
    spec = next(f for f in functions(manifest) if f.key == "predict-iris")
    bundle = stage_function(spec, manifest, build_catalog(manifest))
    layers = [str(build_layer(n, python=HOST_PYTHON, platforms=HOST_PLATFORMS) / "python")
              for n in ("base", "inference")]
    return ":".join([str(bundle), *layers, str(ROOT)]), str(bundle / "catalog.json")


def cold_starts(catalog: Path, runs: int) -> dict[str, list[float]]:
    path, bundled_catalog = _lambda_like_path()
    env = {**_environment(Path(bundled_catalog)), "PYTHONPATH": path}
    times: dict[str, list[float]] = {name: [] for name in COLD}
    for _ in range(runs):  # interleaved, so drift in machine load hits every contender alike
        for name, code in COLD.items():
            script = code.format(event=str(EVENT), model=str(MODEL))
            start = time.perf_counter()
            # -S: no site-packages, only the bundle and the layers, as in a Lambda execution environment
            subprocess.run([sys.executable, "-S", "-c", script], env=env, cwd=ROOT, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    return times


def warm_per_request(catalog: Path, requests: int) -> dict[str, float]:
    """Seconds per request, each contender called in this process `requests` times after a warm-up."""
    import numpy as np
    import onnxruntime as ort

    old = dict(os.environ)
    os.environ.update(_environment(catalog))
    try:
        import bench.naive_app as naive
        import inferstack.functions.predict.handler as ours
    finally:
        os.environ.clear()
        os.environ.update(old)

    class Ctx:
        function_name, memory_limit_in_mb, aws_request_id = "bench", 1024, "r"
        invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:bench"

        def get_remaining_time_in_millis(self) -> int:
            return 10000

    event: dict[str, Any] = json.loads(EVENT.read_text())
    session = ort.InferenceSession(str(MODEL))

    def floor() -> None:
        body = json.loads(event["body"])
        out = session.run(None, {"features": np.array(body["inputs"]["features"], dtype=np.float32)})
        json.dumps({"outputs": [o.tolist() for o in out]})

    contenders = {
        "inferstack": lambda: ours.handler(event, Ctx()),  # type: ignore[arg-type]
        "naive": lambda: naive.handler(event, Ctx()),  # type: ignore[arg-type]
        "floor": floor,
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(50):
            fn()
    for _ in range(5):  # rounds, interleaved
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(requests // 5):
                fn()
            results[name].append((time.perf_counter() - start) / (requests // 5))
    return {name: statistics.median(v) for name, v in results.items()}


def run(runs: int = 10, requests: int = 2000) -> list[dict[str, Any]]:
    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.json"
        build_catalog(load_manifest(ROOT / "inferstack.toml"), bundled=False).dump(catalog)
        cold = {k: statistics.median(v) for k, v in cold_starts(catalog, runs).items()}
        warm = warm_per_request(catalog, requests)
    return [
        {"figure": f"cold start, median of {runs} (s)", "value": cold["inferstack"],
         "baselines": {"naive": cold["naive"], "floor": cold["floor"]},
         "targets": {"naive": 0.5, "floor": 1.5}},
        {"figure": "warm time per predict request (µs)", "value": warm["inferstack"] * 1e6,
         "baselines": {"naive": warm["naive"] * 1e6, "floor": warm["floor"] * 1e6},
         "targets": {"floor": 1.5}},
    ]

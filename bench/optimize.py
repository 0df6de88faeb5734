"""all-MiniLM-L6-v2 built two ways, measured side by side in the same run: the float model (baseline) and the
manifest's `optimize = { quantize = "int8-dynamic", graph = "extended" }` build of it.

1. ms per text at batch 1, 8 and 32 through the whole handler path (`Predictor.predict`), interleaved.
2. Cold start of minilm as a light predict function: a fresh `python -S` process with only the function's
   bundle and its layers (built for this machine from Lambda's recipes) on the path, to its first response.
3. The light predict function's package, code + layers unzipped, as Lambda counts it.
4. Quality over the committed reference texts (`models/reference/minilm-inputs.json`): mean and worst cosine of
   the INT8 embeddings to the float ones, and the margin between paraphrases and unrelated sentences for each.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.minilm import texts

if TYPE_CHECKING:
    from inferstack.manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference" / "minilm-inputs.json"
OPTIMIZE = {"quantize": "int8-dynamic", "graph": "extended", "max_drift": 0.01,
            "reference": "models/reference/minilm-inputs.json"}
#: Pairs of reference texts that mean the same, and pairs that do not.
PARAPHRASES = [("A man is eating food.", "A man is eating a piece of bread."),
               ("The cat sat on the mat.", "A cat was sitting on a rug."),
               ("How do I reset my password?", "I forgot my password, how can I change it?"),
               ("What is the capital of France?", "Paris is the capital and largest city of France.")]
UNRELATED = [("A man is eating food.", "The cat sat on the mat."),
             ("How do I reset my password?", "What is the capital of France?"),
             ("A man is riding a horse.", "Stocks fell sharply after the central bank raised interest rates."),
             ("A woman is playing the violin.", "Refunds are issued to the original payment method within 5 business "
              "days.")]


def manifests() -> dict[str, Manifest]:
    """minilm on the light tier, as shipped (float) and optimized (INT8)."""
    from inferstack.manifest import load_manifest
    from inferstack.optimize.config import Optimize
    from inferstack_infra.packaging import as_light

    light = as_light(load_manifest(ROOT / "inferstack.toml"))
    minilm = light.model("minilm").model_copy(update={"optimize": None})
    int8 = minilm.model_copy(update={"optimize": Optimize.model_validate(OPTIMIZE)})
    return {variant: light.model_copy(update={"models": [model]})
            for variant, model in (("float", minilm), ("INT8", int8))}


def _median_s(fn: Callable[[], Any], budget_s: float) -> float:
    fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - began < budget_s and len(times) < 200):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed_rows(predictors: dict[str, Any], budget_s: float) -> list[dict[str, Any]]:
    rows = []
    for batch in (1, 8, 32):
        sample = {"text": texts(batch, seed=batch)}
        ms: dict[str, list[float]] = {v: [] for v in predictors}
        for _ in range(3):  # rounds, interleaved
            for variant, predictor in predictors.items():
                ms[variant].append(_median_s(lambda p=predictor, s=sample: p.predict(s), budget_s / 3) / batch * 1000)
        rows.append({"figure": f"minilm INT8 ms per text, batch {batch} (CPU)",
                     "value": statistics.median(ms["INT8"]), "baselines": {"float": statistics.median(ms["float"])},
                     "targets": {"float": round(1 / 1.8, 3)} if batch == 32 else {}, "better": "lower"})
    return rows


def _embeddings(predictor: Any, sentences: list[str]) -> np.ndarray:
    return np.array([predictor.predict({"text": [s]})["embeddings"][0] for s in sentences])


def quality_rows(predictors: dict[str, Any]) -> list[dict[str, Any]]:
    sentences = [item["text"][0] for item in json.loads(REFERENCE.read_text())]
    vectors = {variant: _embeddings(p, sentences) for variant, p in predictors.items()}
    cos = (vectors["INT8"] * vectors["float"]).sum(axis=1)
    index = {s: i for i, s in enumerate(sentences)}

    def margin(v: np.ndarray) -> float:
        def mean(pairs: list[tuple[str, str]]) -> float:
            return float(np.mean([v[index[a]] @ v[index[b]] for a, b in pairs]))
        return mean(PARAPHRASES) - mean(UNRELATED)

    return [
        {"figure": f"minilm INT8 mean cosine to float ({len(sentences)} texts)", "value": float(cos.mean()),
         "baselines": {"target": 0.99}, "targets": {"target": 1.0}, "better": "higher"},
        {"figure": "minilm INT8 worst cosine to float", "value": float(cos.min()), "baselines": {"target": 0.95},
         "targets": {}, "better": "higher"},
        {"figure": "minilm paraphrase - unrelated cosine margin", "value": margin(vectors["INT8"]),
         "baselines": {"float": margin(vectors["float"])}, "targets": {}, "better": "higher"},
    ]


def _event(text: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "tests" / "events" / "apiGatewayProxyEvent_predict.json").read_text())
    event.update(resource="/v1/models/minilm/predict", path="/v1/models/minilm/predict",
                 body=json.dumps({"inputs": {"text": [text]}}))
    return event


COLD = ("class C:\n function_name='bench'; memory_limit_in_mb=2048; aws_request_id='r'\n"
        " invoked_function_arn='arn:aws:lambda:us-east-1:1:function:bench'\n"
        " def get_remaining_time_in_millis(self): return 10000\n"
        "import json, os\nevent = json.loads(os.environ['BENCH_EVENT'])\n"
        "import inferstack.functions.predict.handler as h\nr = h.handler(event, C())\n"
        "assert r['statusCode'] == 200, r\n")


def package_and_cold_start_rows(variants: dict[str, Manifest], runs: int) -> list[dict[str, Any]]:
    from inferstack.topology import functions, predict_function_key
    from inferstack_infra import packaging
    from inferstack_infra.catalog import build_catalog

    sizes, environments = {}, {}
    for variant, manifest in variants.items():
        catalog = build_catalog(manifest)
        spec = next(f for f in functions(manifest) if f.key == predict_function_key("minilm"))
        sizes[variant] = sum(packaging.function_size(spec, manifest, catalog)) / (1024 * 1024)
        bundle = packaging.stage_function(spec, manifest, catalog)
        layers = [str(packaging.build_layer(layer, python=packaging.HOST_PYTHON, platforms=packaging.HOST_PLATFORMS)
                      / "python") for layer in packaging.function_layers(spec, manifest)]
        environments[variant] = {**os.environ, "PYTHONPATH": ":".join([str(bundle), *layers]),
                                 "INFERSTACK_CATALOG": str(bundle / "catalog.json"), "INFERSTACK_MODEL": "minilm",
                                 "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048", "POWERTOOLS_METRICS_NAMESPACE": "bench",
                                 "BENCH_EVENT": json.dumps(_event("A man is eating food."))}
    cold: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(runs):  # interleaved
        for variant, environ in environments.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-S", "-c", COLD], env=environ, cwd="/", check=True, capture_output=True)
            cold[variant].append(time.perf_counter() - start)
    return [
        {"figure": f"minilm INT8 light cold start, median of {runs} (s)", "value": statistics.median(cold["INT8"]),
         "baselines": {"float": statistics.median(cold["float"])}, "targets": {}, "better": "lower"},
        {"figure": "minilm INT8 light package, unzipped (MB)", "value": sizes["INT8"],
         "baselines": {"float": sizes["float"]}, "targets": {}, "better": "lower"},
        {"figure": "minilm INT8 package saving (MB)", "value": sizes["float"] - sizes["INT8"],
         "baselines": {"target": 60.0}, "targets": {"target": 1.0}, "better": "higher"},
    ]


def run(seconds: float = 8, runs: int = 5) -> list[dict[str, Any]]:
    from inferstack.inference.session import Predictor
    from inferstack_infra.catalog import build_catalog

    variants = manifests()
    predictors = {variant: Predictor.load(build_catalog(m, bundled=False).models[0], Path("/"))
                  for variant, m in variants.items()}
    return (speed_rows(predictors, seconds) + quality_rows(predictors)
            + package_and_cold_start_rows(variants, runs))


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))

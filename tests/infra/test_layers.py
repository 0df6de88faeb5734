"""The trimmed layers still run the functions: the same recipes and trim rules, built for this machine's
platform, with the predict function's bundle, in an interpreter that sees nothing else (as on Lambda)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inferstack.manifest import load_manifest, parse_manifest
from inferstack.topology import functions
from inferstack_infra.catalog import build_catalog
from inferstack_infra.packaging import (
    HOST_PLATFORMS,
    HOST_PYTHON,
    build_layer,
    dir_size,
    function_layers,
    stage_function,
)
from tests.conftest import EVENTS, EXAMPLE_MANIFEST, MINILM_HANDLER, ROOT

SCRIPT = """
import json, sys
import inferstack.functions.predict.handler as h
class Context:
    function_name = "predict-iris"; memory_limit_in_mb = 1024; aws_request_id = "smoke"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:predict-iris:live"
    def get_remaining_time_in_millis(self): return 10000
predict = h.handler(json.load(open(sys.argv[1])), Context())
model = h.handler(json.load(open(sys.argv[2])), Context())  # another route: the full FastAPI app
print(json.dumps({"predict": predict, "model": model}))
"""


def test_predict_bundle_runs_on_its_trimmed_layers_alone(tmp_path: Path, iris_model: Path) -> None:
    manifest = load_manifest(EXAMPLE_MANIFEST)
    spec = next(f for f in functions(manifest) if f.key == "predict-iris")
    bundle = stage_function(spec, manifest, build_catalog(manifest))
    layers = [build_layer(n, python=HOST_PYTHON, platforms=HOST_PLATFORMS) / "python" for n in ("base", "inference")]
    assert not (layers[1] / "onnxruntime" / "capi" / "libonnxruntime.so.1.31.1").exists()  # trimmed
    # Powertools' Tracer has its X-Ray SDK in the base layer (botocore comes from the Lambda runtime)
    assert (layers[0] / "aws_xray_sdk" / "core" / "recorder.py").is_file() and (layers[0] / "wrapt").is_dir()
    out = subprocess.run(
        [sys.executable, "-S", "-c", SCRIPT, str(EVENTS / "apiGatewayProxyEvent_predict.json"),
         str(EVENTS / "apiGatewayProxyEvent_model.json")],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": ":".join(map(str, [bundle, *layers])), "INFERSTACK_CATALOG": str(bundle / "catalog.json"),
             "INFERSTACK_MODEL": "iris", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["predict"]["statusCode"] == 200
    assert json.loads(result["predict"]["body"])["outputs"]["label"] == [0, 2, 1]
    assert result["model"]["statusCode"] == 200 and json.loads(result["model"]["body"])["name"] == "iris"
    assert dir_size(bundle) + sum(dir_size(p) for p in layers) < 100 * 1024 * 1024


MINILM_SCRIPT = """
import json, sys
import inferstack.functions.predict.handler as h
class Context:
    function_name = "predict-minilm"; memory_limit_in_mb = 2048; aws_request_id = "smoke"
    def get_remaining_time_in_millis(self): return 10000
event = json.load(open(sys.argv[1]))
event.update(path="/v1/models/minilm/predict", body=json.dumps({"inputs": {"text": ["hello world", "hi"]}}))
response = h.handler(event, Context())
print(json.dumps({"response": response, "modules": sorted(m for m in ("torch", "transformers", "huggingface_hub")
                                                          if m in sys.modules)}))
"""


def test_a_handler_model_bundle_runs_on_its_layers_alone(tmp_path: Path, minilm_model: Path) -> None:
    # GIVEN the sentence-embedding model on the light tier: its bundle (model + handler directory) and its layers,
    # the handler's requirements among them, built for this machine by the same recipes and trim rules
    manifest = parse_manifest({"models": [{"name": "minilm", "path": str(minilm_model), "tier": "light",
                                           "handler": str(MINILM_HANDLER)}]}, root=ROOT)
    spec = next(f for f in functions(manifest) if f.key == "predict-minilm")
    bundle = stage_function(spec, manifest, build_catalog(manifest))
    layers = [build_layer(layer, python=HOST_PYTHON, platforms=HOST_PLATFORMS) / "python"
              for layer in function_layers(spec, manifest)]
    assert [layer.name for layer in function_layers(spec, manifest)] == ["base", "inference", "handler-minilm"]
    # WHEN the predict function runs there, in an interpreter that sees nothing else
    out = subprocess.run(
        [sys.executable, "-S", "-c", MINILM_SCRIPT, str(EVENTS / "apiGatewayProxyEvent_predict.json")],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": ":".join(map(str, [bundle, *layers])), "INFERSTACK_CATALOG": str(bundle / "catalog.json"),
             "INFERSTACK_MODEL": "minilm", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048", "PATH": "/usr/bin:/bin"})
    # THEN it embeds texts, with nothing of the conversion tool chain
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["response"]["statusCode"] == 200, result["response"]["body"]
    embeddings = json.loads(result["response"]["body"])["outputs"]["embeddings"]
    assert [len(e) for e in embeddings] == [384, 384]
    assert result["modules"] == []

"""The trimmed layers still run the functions: the same recipes and trim rules, built for this machine's
platform, with the predict function's bundle, in an interpreter that sees nothing else (as on Lambda)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from inferstack.manifest import load_manifest
from inferstack.topology import functions
from infra.catalog import build_catalog
from infra.packaging import HOST_PLATFORMS, HOST_PYTHON, build_layer, dir_size, stage_function
from tests.conftest import EVENTS, EXAMPLE_MANIFEST

SCRIPT = """
import json, sys
import functions.predict.handler as h
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

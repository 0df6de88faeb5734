"""A model's handler travels with it: into its light function (code and a layer of its requirements, built for
Lambda's arm64) and into its heavy model archive (code/ with its requirements built for the container's
amd64 Python), and nowhere twice."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from tests.infra.conftest import Synthesized

#: ELF e_machine values.
AARCH64, X86_64 = 183, 62


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return int.from_bytes(data[18:20], "little")


def asset_dir(s: Synthesized, code: dict[str, Any]) -> Path:
    return s.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"


def minilm_function(s: Synthesized, handler: str) -> dict[str, Any]:
    (fn,) = [r for r in s.template.find_resources("AWS::Lambda::Function").values()
             if r["Properties"]["Handler"] == handler
             and r["Properties"]["Environment"]["Variables"].get("INFERSTACK_MODEL") == "minilm"]
    return fn


def test_light_function_bundles_the_handler_directory_once(snapstart: Synthesized) -> None:
    for handler in ("inferstack.functions.predict.handler.handler", "inferstack.functions.worker.handler.handler"):
        bundle = asset_dir(snapstart, minilm_function(snapstart, handler)["Properties"]["Code"])
        assert (bundle / "handlers/minilm/handler.py").is_file()
        assert (bundle / "handlers/minilm/tokenizer.json").is_file()
        assert not (bundle / "handlers/minilm/model.onnx").exists()  # the model travels once, as models/minilm.onnx
        assert (bundle / "models/minilm.onnx").is_file()
        entry = next(m for m in json.loads((bundle / "catalog.json").read_text())["models"] if m["name"] == "minilm")
        assert entry["handler"] == "handlers/minilm/handler.py"
        assert entry["request_schema"]["properties"]["text"]["maxItems"] == 128


def test_light_function_gets_a_layer_of_the_handlers_requirements_for_arm64(snapstart: Synthesized) -> None:
    fn = minilm_function(snapstart, "inferstack.functions.predict.handler.handler")
    layers = fn["Properties"]["Layers"]
    assert len(layers) == 3  # base, inference, handler-minilm
    (layer,) = [r for k, r in snapstart.template.find_resources("AWS::Lambda::LayerVersion").items()
                if k.startswith("HandlerMinilmLayer")]
    # named relative to the project, else by its directory (here the handler lies outside the test's project)
    assert "minilm/requirements.txt" in layer["Properties"]["Description"]
    site = asset_dir(snapstart, layer["Properties"]["Content"]) / "python"
    (binary,) = (site / "tokenizers").glob("*.so")
    assert elf_machine(binary.read_bytes()[:20]) == AARCH64
    assert not (site / "huggingface_hub").exists()  # only what requirements.txt pins


def test_heavy_model_archive_carries_the_handler_and_its_amd64_requirements(example: Synthesized) -> None:
    archives = {}
    for path in example.outdir.glob("asset.*.tar.gz"):
        with tarfile.open(path) as tar:
            if "inferstack.json" in tar.getnames():
                config = json.loads(tar.extractfile("inferstack.json").read())  # type: ignore[union-attr]
                archives[config["name"]] = (path, config)
    path, config = archives["minilm"]
    assert config["handler"] == "code/handler.py"
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        assert {"model.onnx", "code/handler.py", "code/tokenizer.json", "code/requirements.txt"} <= names
        assert "code/model.onnx" not in names
        (binary,) = [n for n in names if n.startswith("code/lib/tokenizers/") and n.endswith(".so")]
        assert elf_machine(tar.extractfile(binary).read(20)) == X86_64  # type: ignore[union-attr]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())  # reproducible byte for byte

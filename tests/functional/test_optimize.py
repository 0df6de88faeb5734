"""Build-time optimization: INT8 quantization and an offline-optimized graph, gated on accuracy, shipped by
every tier's packaging in place of the float model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inferstack.inference.session import Predictor
from inferstack.manifest import Manifest, parse_manifest
from inferstack.topology import functions, predict_function_key
from inferstack_infra import packaging
from inferstack_infra.catalog import build_catalog
from inferstack_infra.optimize import AccuracyGateError, optimization
from inferstack_infra.packaging import stage_function, stage_heavy_model

FEATURES, HIDDEN, CLASSES = 64, 512, 4


def classifier(path: Path) -> Path:
    """A small two-layer classifier: features in, class probabilities and a label out."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.2, (FEATURES, HIDDEN)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (HIDDEN, CLASSES)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
         helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0)],
        "classifier", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(packaging, "BUILD_DIR", tmp_path / "build")
    classifier(tmp_path / "clf.onnx")
    rows = np.random.default_rng(1).normal(0, 1, (64, FEATURES)).round(4)
    (tmp_path / "reference.json").write_text(json.dumps([{"features": rows[i:i + 8].tolist()}
                                                         for i in range(0, 64, 8)]))
    return tmp_path


def manifest(root: Path, tier: str = "light", **optimize: Any) -> Manifest:
    model: dict[str, Any] = {"name": "clf", "path": "clf.onnx", "tier": tier}
    if tier == "heavy":
        model["instance_type"] = "ml.g5.xlarge"
    if optimize:
        model["optimize"] = {"reference": "reference.json", **optimize}
    return parse_manifest({"name": "opt", "models": [model]}, root=root)


def test_quantized_and_pre_optimized_model_passes_its_gate_and_is_smaller(project: Path) -> None:
    # GIVEN a classifier with INT8 quantization and a basic graph optimization, within 5% drift
    m = manifest(project, quantize="int8-dynamic", graph="basic", max_drift=0.05)
    # WHEN it is built
    report = optimization(m, m.models[0])
    # THEN the artifact is a quarter of the float model, its labels agree and its probabilities stay close
    assert report is not None and report.artifact.is_file()
    assert report.artifact_bytes < report.source_bytes / 3
    drifts = {d.output: d for d in report.drifts}
    assert drifts["label"].kind == "agreement" and drifts["label"].rows == 64
    assert drifts["probabilities"].kind == "cosine" and drifts["probabilities"].mean > 0.95
    assert max(d.drift for d in report.drifts) <= 0.05
    assert set(report.steps) == {"int8-dynamic quantization", "basic graph optimization"}
    # AND the quantized graph holds integer matrix products
    ops = {n.op_type for n in onnx.load(str(report.artifact)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}, ops
    # AND a second build is the cached one
    assert optimization(m, m.models[0]).artifact == report.artifact  # type: ignore[union-attr]


def quantized_weight_types(model: Path) -> set[str]:
    """The element types of the weights the quantized graph's integer matrix products read."""
    graph = onnx.load(str(model)).graph
    initializers = {i.name: i.data_type for i in graph.initializer}
    weights = {n.input[1] for n in graph.node if n.op_type in {"MatMulInteger", "DynamicQuantizeMatMul"}}
    return {TensorProto.DataType.Name(initializers[w]) for w in weights}


@pytest.mark.parametrize(("weights", "expected"), [(None, "INT8"), ("int8", "INT8"), ("uint8", "UINT8")])
def test_quantized_weights_are_signed_by_default_and_unsigned_on_request(project: Path, weights: str | None,
                                                                         expected: str) -> None:
    # GIVEN INT8 quantization with the default weight type, or one the manifest names
    m = manifest(project, quantize="int8-dynamic", max_drift=0.05, **({"weights": weights} if weights else {}))
    # WHEN it is built
    report = optimization(m, m.models[0])
    # THEN both matrix products read weights of that type, per output channel (one scale per column)
    assert report is not None
    assert quantized_weight_types(report.artifact) == {expected}
    graph = onnx.load(str(report.artifact)).graph
    scales = {i.name: list(i.dims) for i in graph.initializer if i.name.endswith("_scale")}
    assert scales["w1_scale"] == [HIDDEN] and scales["w2_scale"] == [CLASSES]
    assert max(d.drift for d in report.drifts) <= 0.05


@pytest.mark.parametrize("weights", ["int8", "uint8"])
def test_a_model_that_drifts_past_max_drift_is_refused_and_nothing_is_left(project: Path, weights: str) -> None:
    # GIVEN a gate tighter than INT8 can meet, with either weight type
    m = manifest(project, quantize="int8-dynamic", weights=weights, max_drift=1e-9)
    # WHEN it is built THEN the build is refused, naming the step, the drift and the outputs
    with pytest.raises(AccuracyGateError) as info:
        optimization(m, m.models[0])
    assert "int8-dynamic quantization drifts" in str(info.value) and "max_drift = 1e-09" in str(info.value)
    assert "probabilities: mean cosine" in str(info.value)
    # AND no artifact is left to be shipped, nor is the catalog built
    assert not [p for p in (project / "build" / "optimized").iterdir() if (p / ".complete").exists()]
    with pytest.raises(AccuracyGateError):
        build_catalog(m)


def test_every_tier_ships_the_optimized_model(project: Path) -> None:
    settings = {"quantize": "int8-dynamic", "graph": "extended", "max_drift": 0.05}
    light, plain = manifest(project, **settings), manifest(project)
    report = optimization(light, light.models[0])
    assert report is not None
    # GIVEN the light tier: its predict function bundles the optimized file, a new version, loaded as pre-optimized
    catalog = build_catalog(light)
    entry = catalog.get("clf")
    assert entry is not None and entry.graph_optimized == "extended"
    assert entry.version != build_catalog(plain).models[0].version
    spec = next(f for f in functions(light) if f.key == predict_function_key("clf"))
    bundle = stage_function(spec, light, catalog)
    assert (bundle / entry.artifact).read_bytes() == report.artifact.read_bytes()
    # AND what the bundle serves agrees with the float model on the reference rows
    rows = json.loads((project / "reference.json").read_text())[0]["features"]
    served = Predictor.load(entry, bundle).predict({"features": rows})
    floats = Predictor.load(build_catalog(plain, bundled=False).models[0], Path("/")).predict({"features": rows})
    assert served["label"] == floats["label"]
    # AND the local twin (unbundled catalog) loads the same optimized file
    assert Path(build_catalog(light, bundled=False).models[0].artifact) == report.artifact
    # GIVEN the heavy tier: its model archive carries the same file and says how it was optimized
    heavy = manifest(project, "heavy", **settings)
    model_dir = stage_heavy_model(heavy.models[0], heavy, build_catalog(heavy), project / "model")
    assert (model_dir / "model.onnx").read_bytes() == report.artifact.read_bytes()
    assert json.loads((model_dir / "inferstack.json").read_text())["graph_optimized"] == "extended"


def test_doctor_shows_sizes_before_and_after_and_the_drift(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inferstack_infra.cli.doctor import optimizations

    # GIVEN a heavy model quantized to INT8
    optimizations(manifest(project, "heavy", quantize="int8-dynamic", max_drift=0.05))
    out = capsys.readouterr().out
    # THEN doctor names the recipe, both sizes, each output's drift, and warns about INT8 on a GPU endpoint
    assert "model clf: INT8 dynamic quantization: 0.1 MB -> 0.0 MB" in out
    assert "label: " in out and "% of 64 rows agree" in out and "probabilities: mean cosine" in out
    assert "GPU endpoint" in out
    # AND an unsigned-weight build says so in its recipe
    optimizations(manifest(project, "heavy", quantize="int8-dynamic", weights="uint8", max_drift=0.05))
    assert "model clf: INT8 dynamic quantization (uint8 weights): 0.1 MB -> 0.0 MB" in capsys.readouterr().out

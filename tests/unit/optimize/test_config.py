"""`[[models]] optimize = {...}` in the manifest: what it accepts and how it names a mistake."""

from __future__ import annotations

from typing import Any

import pytest

from inferstack.manifest import ManifestError, parse_manifest


def parse(optimize: Any) -> Any:
    return parse_manifest({"models": [{"name": "m", "path": "m.onnx", "tier": "light", "optimize": optimize}]},
                          check_files=False).models[0].optimize


def test_defaults_and_a_full_setting() -> None:
    settings = parse({"quantize": "int8-dynamic", "graph": "extended", "max_drift": 0.02, "reference": "r.json"})
    assert settings.quantize == "int8-dynamic" and settings.graph == "extended" and settings.max_drift == 0.02
    assert settings.describe() == "INT8 dynamic quantization + extended graph optimization"
    assert parse({"graph": "basic"}).max_drift == 0.01


def test_weights_are_signed_unless_the_manifest_asks_for_unsigned() -> None:
    assert parse({"quantize": "int8-dynamic"}).weights == "int8"
    settings = parse({"quantize": "int8-dynamic", "weights": "uint8", "graph": "basic"})
    assert settings.weights == "uint8"
    assert settings.describe() == "INT8 dynamic quantization (uint8 weights) + basic graph optimization"


@pytest.mark.parametrize(("optimize", "where", "says"), [
    ({}, "models[0] (m).optimize", "needs quantize = 'int8-dynamic' and/or graph"),
    ({"quantize": "int4"}, "models[0] (m).optimize.quantize", "'none' or 'int8-dynamic'"),
    ({"graph": "all"}, "models[0] (m).optimize.graph", "'none', 'basic' or 'extended'"),
    ({"graph": "basic", "max_drift": 0}, "models[0] (m).optimize.max_drift", "greater than 0"),
    ({"graph": "basic", "drift": 0.1}, "models[0] (m).optimize.drift", "unknown key"),
    ({"quantize": "int8-dynamic", "weights": "int4"}, "models[0] (m).optimize.weights", "'int8' or 'uint8'"),
    ({"graph": "basic", "weights": "uint8"}, "models[0] (m).optimize", "optimize.weights"),
])
def test_mistakes_name_the_field(optimize: dict[str, Any], where: str, says: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse(optimize)
    assert (where, ) == tuple(p for p, _ in info.value.problems)
    assert says in info.value.problems[0][1]

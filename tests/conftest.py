from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).parent / "events"
EXAMPLE_MANIFEST = ROOT / "inferstack.toml"
IRIS = ROOT / "models" / "iris.onnx"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture(scope="session")
def iris_model() -> Path:
    if not IRIS.exists():
        pytest.fail("models/iris.onnx is missing: run `make models` (make test does it)")
    return IRIS


MINILM = ROOT / "models" / "minilm" / "model.onnx"
MINILM_HANDLER = ROOT / "models" / "minilm" / "handler.py"


@pytest.fixture(scope="session")
def minilm_model() -> Path:
    if not MINILM.exists() or not MINILM.with_name("tokenizer.json").exists():
        pytest.fail("models/minilm is missing: run `make models` (make test does it)")
    return MINILM


DIGITS_MANIFEST = ROOT / "examples" / "digits" / "inferstack.toml"
DIGITS = ROOT / "models" / "digits-light.onnx"


@pytest.fixture(scope="session")
def digits_models() -> Path:
    """The cascade example's models and held-out rows (models/build_digits.py)."""
    for name in ("digits-light.onnx", "digits-heavy.onnx", "digits-heldout.json"):
        if not (ROOT / "models" / name).exists():
            pytest.fail(f"models/{name} is missing: run `make models` (make test does it)")
    return ROOT / "models"

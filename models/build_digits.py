"""Build the cascade example: two classifiers of scikit-learn's handwritten digits (8x8 images, 64 pixels of
0..16), as ONNX, and the held-out rows they were not trained on.

- `digits-light.onnx`: logistic regression (light tier: a few kilobytes, microseconds per row);
- `digits-heavy.onnx`: a two-layer MLP (256, 128) (the heavy tier in the example, stronger on hard rows);
- `digits-heldout.json`: the fixed held-out split (30 %, stratified, seed 0): `{"pixels": [...], "labels": [...]}`.

Both models take `pixels` (float32, [N, 64]) and answer `label` (int64, [N]) and `probabilities` (float32,
[N, 10]), so they can be stages of one cascade (`[[cascades]]` in examples/digits/inferstack.toml) that accepts
the light model's answer where its top probability reaches `min_confidence`. Deterministic (fixed seeds).
Run by `make models`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler

HERE = Path(__file__).parent
RENAME = {"X": "pixels", "output_label": "label", "output_probability": "probabilities"}


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    x = data.data.astype(np.float32)
    parts: list[np.ndarray] = train_test_split(x, data.target, test_size=0.3, random_state=0, stratify=data.target)
    return parts[0], parts[1], parts[2], parts[3]


def write_onnx(model: Pipeline, sample: np.ndarray, out: Path, doc: str) -> None:
    onx: Any = to_onnx(model, sample, options={id(model.steps[-1][1]): {"zipmap": False}},
                       target_opset={"": 17, "ai.onnx.ml": 3})
    for node in onx.graph.node:
        node.input[:] = [RENAME.get(i, i) for i in node.input]
        node.output[:] = [RENAME.get(o, o) for o in node.output]
    for value in [*onx.graph.input, *onx.graph.output]:
        value.name = RENAME.get(value.name, value.name)
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onx.doc_string = doc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onx.SerializeToString())


def build(out_dir: Path) -> dict[str, float]:
    x_train, x_test, y_train, y_test = split()
    light = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=0))
    heavy = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-3, max_iter=500,
                                                          random_state=0))
    accuracy = {}
    for name, model in (("light", light), ("heavy", heavy)):
        model.fit(x_train, y_train)
        accuracy[name] = float(model.score(x_test, y_test))
        write_onnx(model, x_train[:1], out_dir / f"digits-{name}.onnx",
                   f"digits {name} ({type(model.steps[-1][1]).__name__}); held-out accuracy {accuracy[name]:.4f}")
    (out_dir / "digits-heldout.json").write_text(json.dumps({"pixels": x_test.astype(int).tolist(),
                                                             "labels": y_test.tolist()}, separators=(",", ":")))
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    acc = build(args.out_dir)
    print(f"wrote digits-light.onnx, digits-heavy.onnx, digits-heldout.json in {args.out_dir} "
          f"(held-out accuracy: light {acc['light']:.4f}, heavy {acc['heavy']:.4f})")

"""Build the example light model: a logistic-regression classifier of the iris data set, as ONNX.

Written into a new project by `inferstack init` (which runs it when scikit-learn and skl2onnx are installed:
`pip install "inferstack[models]"`; inferstack's own repository builds its example with it in `make models`).
Deterministic: the same scikit-learn/skl2onnx versions give the same file.
The outputs are plain tensors (no ZipMap): `label` (int64, [N]) and `probabilities` (float32, [N, 3]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def build(out: Path) -> float:
    data = load_iris()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=0.25, random_state=0,
                                                        stratify=data.target)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    onx = to_onnx(model, x_train[:1], options={id(model.steps[-1][1]): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    # Friendly tensor names, and a named batch axis ("N") on every input and output.
    rename = {"X": "features", "output_label": "label", "output_probability": "probabilities"}
    for node in onx.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for value in [*onx.graph.input, *onx.graph.output]:
        value.name = rename.get(value.name, value.name)
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onx.doc_string = f"iris logistic regression; held-out accuracy {accuracy:.3f}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onx.SerializeToString())
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("iris.onnx"))
    args = parser.parse_args()
    acc = build(args.out)
    print(f"wrote {args.out} (held-out accuracy {acc:.3f})")

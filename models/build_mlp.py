"""Build the example heavy model: a 10.5M-parameter MLP (512 -> 4096 -> 2048 -> 16), as ONNX.

Its weights are seeded random numbers (He initialisation): it stands in for a large model whose cost is real
matrix multiplies, so that dynamic batching matters; it is not trained and its outputs mean nothing. Built at
set-up (`make models`), deterministically.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS = (512, 4096, 2048, 16)


def build(out: Path) -> int:
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    current = "features"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(LAYERS)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(LAYERS) - 2
        gemm_out = "logits" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"a{i}"]))
            current = f"a{i}"
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", LAYERS[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", LAYERS[-1]]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", LAYERS[-1]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    model.doc_string = "synthetic 10.5M-parameter MLP (seeded random weights) for the heavy tier"
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
    return sum(int(np.prod(t.dims)) for t in inits)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("mlp.onnx"))
    args = parser.parse_args()
    params = build(args.out)
    print(f"wrote {args.out} ({params / 1e6:.1f}M parameters)")

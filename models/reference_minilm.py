"""Produce `models/reference/minilm.json`: all-MiniLM-L6-v2's embeddings by its upstream implementation,
sentence-transformers on PyTorch, from the checkpoint that `models/build_minilm.py` converts.

    pip install -e '.[reference]' && python models/reference_minilm.py

Run once, by hand, when the texts or the checkpoint change; never by set-up or tests. The file it writes is
committed: `make models` checks the ONNX graph against it, and `tests/functional/test_minilm.py` checks the
served embeddings against it, both within 1e-4, without PyTorch.
"""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

import numpy as np
from build_minilm import PACKAGE, REFERENCE, WEIGHTS_SHA256, fetch_checkpoint

TEXTS = [
    # paraphrases and unrelated sentences
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The girl is carrying a baby.",
    "A woman is playing the violin.",
    "The cat sat on the mat.",
    "A cat was sitting on a rug.",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "What is the capital of France?",
    "Paris is the capital and largest city of France.",
    "Stocks fell sharply after the central bank raised interest rates.",
    "Refunds are issued to the original payment method within 5 business days.",
    "To return an item, print the prepaid label and drop the parcel at any post office.",
    # accents and other scripts
    "Crème brûlée, naïve café owners and São Paulo's 東京 branch!",
    "Ångström, Øresund, Łódź, Ελληνικά and русский текст",
    "東京は日本の首都です。",
    "我喜欢在周末读书。",
    "서울은 한국의 수도입니다.",
    "Hello 世界, привет мир, مرحبا بالعالم, שלום עולם, नमस्ते दुनिया",
    # emoji, symbols, code, odd characters
    "I love this! 😍🔥👍",
    "🙂",
    "Numbers: 3.14159, 2,718, 1e-9 and 42%.",
    "def embed(texts): return model.encode(texts)  # code",
    "https://example.com/path?query=1&x=y",
    "don't won't can't it's",
    "zero\u200bwidth and no\u00a0break spaces",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "UPPER CASE AND lower case ARE THE SAME FOR AN UNCASED MODEL",
    # empty, whitespace, very short
    "",
    "   ",
    "\t\n  leading and trailing whitespace \n",
    "ok",
    "a",
    # past the 256-token limit: truncated
    "word " * 600,
    "The quick brown fox jumps over the lazy dog. " * 60,
]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(fetch_checkpoint()), device="cpu", local_files_only=True)
    with torch.inference_mode():
        embeddings = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True, batch_size=8)
    tokens = model.preprocess(TEXTS)["attention_mask"].sum(dim=1).tolist()
    header = {
        "about": "all-MiniLM-L6-v2 unit embeddings by sentence-transformers on PyTorch (CPU), float32; "
                 "written by models/reference_minilm.py",
        "checkpoint": {"package": PACKAGE, "model.safetensors sha256": WEIGHTS_SHA256},
        "produced_with": {name: version(name) for name in ("sentence-transformers", "transformers", "torch")}
                         | {"python": platform.python_version(), "machine": platform.machine()},
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
    }
    # one embedding per line; 9 significant digits give float32 back exactly
    rows = ",\n".join("  [" + ", ".join(f"{float(x):.9g}" for x in row) + "]" for row in embeddings)
    text = (json.dumps(header, indent=1, ensure_ascii=False)[:-2] + f',\n "tokens": {json.dumps(tokens)},\n'
            ' "embeddings": [\n' + rows + "\n ]\n}\n")
    if not (np.array(json.loads(text)["embeddings"], dtype=np.float32) == embeddings).all():
        raise SystemExit("the embeddings do not survive the round trip through JSON")
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE} ({len(TEXTS)} texts, {Path(REFERENCE).stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()

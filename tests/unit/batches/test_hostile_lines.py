"""One hostile line of a bulk-scoring file fails itself, never its chunk."""

from __future__ import annotations

import json

from inferstack.batches.rows import ChunkRows, Scored
from inferstack.batches.schemas import BatchContext
from inferstack.inference.spec import TensorSpec


def test_a_line_nested_100000_deep_or_with_a_5000_digit_integer_is_a_malformed_line() -> None:
    rows = ChunkRows([TensorSpec("features", "float32", ["N", 4])], handler=False)
    data = b"\n".join([json.dumps({"features": [1, 2, 3, 4]}).encode(), b"[" * 100_000 + b"]" * 100_000,
                       b'{"features": [' + b"9" * 5000 + b"]}", json.dumps({"features": [5, 6, 7, 8]}).encode()])
    scored = Scored()
    context = BatchContext(batch_id="b", input="s3://in/x.jsonl", format="jsonl", output="s3://out/")
    parsed = rows.parse(data, 1, context, scored)
    assert [r.line for r in parsed] == [1, 4]
    assert len(scored.errors) == 2 and all("malformed-line" in e for e in scored.errors)
    assert "nested too deeply" in scored.errors[0] and "too many digits" in scored.errors[1]

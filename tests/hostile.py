"""What a hostile client sends, and how to measure what it cost the process that received it.

`attacks(width)` builds the bodies of a predict request to a model with one float input of `width` columns, each
with the status it must get. The suites in tests/functional/test_hostile*.py and tests/e2e/test_hostile.py send
them to every front door and measure the receiving process's peak RSS (`VmHWM`, reset before each request
through `/proc/PID/clear_refs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class Attack:
    name: str
    body: bytes
    status: int
    #: The problem type's slug, when the function (not the gateway) answers.
    kind: str

    def budget(self) -> int:
        """The most a rejected body may cost the process that received it: 10x its size plus 20 MB."""
        return 10 * len(self.body) + 20 * MB


def _rows(row: bytes, n: int) -> bytes:
    return b'{"inputs": [' + b",".join([row] * n) + b"]}"


def attacks(width: int) -> list[Attack]:
    """Malformed JSON (400) and bodies whose values are wrong for a float input (422), a few KB to 2 MB each."""
    floats = ",".join(["1.5"] * width).encode()
    strings = ",".join(['"ab"'] * width).encode()
    return [
        Attack("nested 200,000 deep", b"[" * 200_000 + b"]" * 200_000, 400, "malformed-json"),
        Attack("nested 100 deep", b'{"inputs": ' + b"[" * 100 + b"1.5" + b"]" * 100 + b"}", 400, "malformed-json"),
        Attack("integer of 5,000 digits", b'{"inputs": [[' + b"9" * 5000 + b"]]}", 400, "malformed-json"),
        Attack("invalid UTF-8", b'{"inputs": [["\xff\xfe"]]}', 400, "malformed-json"),
        Attack("escaped lone surrogate", b'{"inputs": [["\\udc00"]]}', 400, "malformed-json"),
        Attack("not JSON", b"<html><body>hello</body></html>", 400, "malformed-json"),
        Attack("one 80 KB string in a float input", json.dumps({"inputs": [["x" * 80_000] + [1.5] * (width - 1)]})
               .encode(), 422, "invalid-input"),
        Attack("long strings to a float input", json.dumps(
            {"inputs": [["x" * 1000] * min(width, 8) + [1.5] * (width - min(width, 8))] * 20}).encode(), 422,
            "invalid-input"),
        Attack("1 MB of short strings to a float input", _rows(b"[" + strings + b"]", MB // (5 * width + 2)),
               422, "invalid-input"),
        Attack("2 MB of empty lists", _rows(b"[]", 2 * MB // 3), 413, "payload-too-large"),
        Attack("2 MB of empty objects", _rows(b"{}", 2 * MB // 3), 413, "payload-too-large"),
        Attack("1 MB of nulls", _rows(b"[" + b",".join([b"null"] * width) + b"]", MB // (5 * width + 2)), 422,
               "invalid-input"),
        Attack("ragged rows", _rows(b"[" + floats + b"]", 1000)[:-2] + b",[1.5]]}", 422, "invalid-input"),
        Attack("integer of 400 digits", b'{"inputs": [[' + b"9" * 400 + b"," + b",".join([b"1"] * (width - 1))
               + b"]]}", 422, "invalid-input"),
        Attack("1e999 (infinite)", b'{"inputs": [[1e999' + b",1" * (width - 1) + b"]]}", 422, "invalid-input"),
        Attack("50,000 unknown inputs", json.dumps({"inputs": {f"x{i}": [[1.5]] for i in range(50_000)}}).encode(),
               422, "invalid-input"),
        Attack("100,000 unknown fields", json.dumps({"inputs": [[1.5] * width],
                                                     **{f"f{i}": 1 for i in range(100_000)}}).encode(),
               422, "invalid-request"),
    ]


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


class PeakMemory:
    """The peak RSS a process reached over a block, above its RSS when the block began (Linux: VmHWM, reset by
    writing 5 to /proc/PID/clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.grew = 0

    def __enter__(self) -> PeakMemory:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = _status(self.pid)["VmRSS"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.grew = max(0, _status(self.pid)["VmHWM"] - self.before)

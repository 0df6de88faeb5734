from __future__ import annotations

import io

from inferstack_infra.cli.batch import Progress


def view(done: int, failed: int = 0, total: int | None = 1000) -> dict[str, object]:
    return {"status": "running", "rows": {"total": total, "succeeded": done, "failed": failed},
            "chunks": {"done": done // 100, "total": 10 if total else None}}


def test_progress_shows_rows_per_second_and_eta_from_an_injected_clock() -> None:
    now = [0.0]
    progress = Progress(io.StringIO(), clock=lambda: now[0])
    assert progress.line(view(0, total=None)) == "running: planning the input ..."
    assert progress.line(view(100)).endswith("0 rows/s, ETA -")
    now[0] = 2.0
    line = progress.line(view(480, failed=20))
    assert line == "running: 500/1,000 rows (50.0%), 20 failed, chunk 4/10, 250 rows/s, ETA 2 s"

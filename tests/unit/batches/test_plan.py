from __future__ import annotations

import pytest

from inferstack.batches.plan import plan_chunks


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("block", [1, 3, 7, 1000])
def test_chunks_are_line_aligned_whatever_the_blocks(block: int) -> None:
    data = b"".join(b'{"a":%d}\n' % i for i in range(10))
    plan = plan_chunks(blocks(data, block), 3, batch_id="b")
    assert plan.rows == 10 and [c.rows for c in plan.chunks] == [3, 3, 3, 1]
    assert [c.first_line for c in plan.chunks] == [1, 4, 7, 10]
    assert b"".join(data[c.start:c.end] for c in plan.chunks) == data
    assert all(data[c.start:c.end].endswith(b"\n") for c in plan.chunks)
    assert {c.batch_id for c in plan.chunks} == {"b"}


def test_the_last_line_needs_no_newline_and_blank_lines_are_rows() -> None:
    plan = plan_chunks([b"x\n\ny"], 10)
    assert plan.rows == 3 and (plan.chunks[0].start, plan.chunks[0].end) == (0, 4)


def test_csv_header_is_read_and_not_a_row() -> None:
    plan = plan_chunks(blocks(b"id,a,b\n1,2,3\n4,5,6\n", 4), 1, header=True)
    assert plan.header == ["id", "a", "b"] and plan.rows == 2
    assert [(c.start, c.end, c.first_line) for c in plan.chunks] == [(7, 13, 2), (13, 19, 3)]


def test_empty_files_have_no_chunks() -> None:
    assert plan_chunks([], 5).chunks == []
    assert plan_chunks([b"a,b\n"], 5, header=True).chunks == []

"""Split an input file into line-aligned chunks of `rows_per_chunk` rows, reading it once as a stream.

Only the positions of line ends are kept (numpy finds them a block at a time), so memory stays at one block
whatever the file's size. A line is what lies between two newlines; the file's last line needs no newline;
a CSV file's first line is its header. The plan is a JSON array of `Chunk`s: what the Distributed Map's
ItemReader reads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from inferstack.batches.schemas import Chunk

#: Longest header line a CSV file may have.
MAX_HEADER_BYTES = 1 << 20


@dataclass
class Plan:
    chunks: list[Chunk] = field(default_factory=list)
    rows: int = 0
    header: list[str] | None = None
    size: int = 0


class _Planner:
    def __init__(self, batch_id: str, rows_per_chunk: int, *, header: bool) -> None:
        self.batch_id, self.rows_per_chunk = batch_id, rows_per_chunk
        self.want_header = header
        self.plan = Plan()
        self.offset = 0          # bytes seen
        self.chunk_start: int | None = None if header else 0
        self.chunk_first_line = 2 if header else 1
        self.chunk_rows = 0
        self.lines = 0           # complete lines seen (header included)
        self.head = b""
        self.last_byte = b"\n"

    def _close_chunk(self, end: int) -> None:
        assert self.chunk_start is not None
        if self.chunk_rows:
            self.plan.chunks.append(Chunk(batch_id=self.batch_id, index=len(self.plan.chunks), start=self.chunk_start,
                                          end=end, first_line=self.chunk_first_line, rows=self.chunk_rows))
            self.plan.rows += self.chunk_rows
        self.chunk_start, self.chunk_first_line, self.chunk_rows = end, self.lines + 1, 0

    def feed(self, block: bytes) -> None:
        if not block:
            return
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + self.offset + 1  # exclusive ends
        if self.chunk_start is None:  # the CSV header: the first line
            self.head += block[:MAX_HEADER_BYTES]
            if len(ends):
                first = int(ends[0])
                if first > MAX_HEADER_BYTES:
                    raise ValueError(f"the CSV header line is longer than {MAX_HEADER_BYTES} bytes")
                self._set_header(self.head[:first])
                self.lines = 1
                self.chunk_start, self.chunk_first_line = first, 2
                ends = ends[1:]
            elif len(self.head) >= MAX_HEADER_BYTES:
                raise ValueError(f"the CSV header line is longer than {MAX_HEADER_BYTES} bytes")
        i = 0
        while i < len(ends):
            room = self.rows_per_chunk - self.chunk_rows
            take = ends[i:i + room]
            self.chunk_rows += len(take)
            self.lines += len(take)
            i += len(take)
            if self.chunk_rows == self.rows_per_chunk:
                self._close_chunk(int(take[-1]))
        self.offset += len(block)
        self.last_byte = block[-1:]

    def _set_header(self, line: bytes) -> None:
        text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
        self.plan.header = next(csv.reader([text]))

    def finish(self) -> Plan:
        if self.chunk_start is None:  # a CSV file of one line: the header alone
            self._set_header(self.head)
            self.chunk_start = self.offset
        elif self.last_byte != b"\n" and self.offset > self.chunk_start:
            self.chunk_rows += 1  # the last line, without its newline
            self.lines += 1
        self._close_chunk(self.offset)
        self.plan.size = self.offset
        return self.plan


def plan_chunks(blocks: Iterable[bytes], rows_per_chunk: int, *, header: bool = False, batch_id: str = "") -> Plan:
    planner = _Planner(batch_id, rows_per_chunk, header=header)
    for block in blocks:
        planner.feed(block)
    return planner.finish()

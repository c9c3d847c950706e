"""BatchedWriter: one write per loop iteration, early writes at flush_at, none when closing."""

from __future__ import annotations

import asyncio

from jingxin.channels.writer import BatchedWriter


class Recorder(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


async def test_writes_of_one_iteration_leave_together() -> None:
    writer, transport = BatchedWriter(flush_at=10), Recorder()
    writer.attach(transport)
    for chunk in (b"a", b"b", b"c"):
        writer.write(chunk)
    assert transport.writes == []  # nothing until the loop turns
    await asyncio.sleep(0)
    assert transport.writes == [b"abc"]


async def test_a_full_batch_leaves_at_once_and_closing_drops() -> None:
    writer, transport = BatchedWriter(flush_at=2), Recorder()
    writer.attach(transport)
    writer.write(b"1")
    writer.write(b"2")
    assert transport.writes == [b"12"]
    writer.write(b"3")
    transport.closing = True
    await asyncio.sleep(0)
    assert transport.writes == [b"12"]

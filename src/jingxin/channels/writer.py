"""Batched PDU writes: everything queued in one event-loop iteration leaves in one write.

Used by the SMPP session, the CMPP link and both of the simulator's servers. ``transport.write`` is already
non-blocking and buffered, so nobody awaits a drain per PDU; coalescing saves a system
call per PDU when a window's worth of submits (or responses) is produced at once. A batch
also leaves early once ``flush_at`` PDUs are queued, so the peer can start on them.
"""

from __future__ import annotations

import asyncio
import socket


class BatchedWriter:
    __slots__ = ("_loop", "_transport", "_out", "_scheduled", "flush_at")

    def __init__(self, *, flush_at: int = 10) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.WriteTransport | None = None
        self._out: list[bytes] = []
        self._scheduled = False
        self.flush_at = max(1, flush_at)

    def attach(self, transport: asyncio.WriteTransport | None) -> None:
        """Write to ``transport`` from now on (None: the link is gone, drop writes). A
        batch is already one write, so Nagle's delay would only add latency: it is off."""
        self._transport = transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        out = self._out
        out.append(data)
        if len(out) >= self.flush_at:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is queued now (dropped if the transport is gone or closing)."""
        out = self._out
        transport = self._transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

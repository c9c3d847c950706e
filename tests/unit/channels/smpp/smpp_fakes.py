"""Fakes for the SMPP unit tests (no sockets)."""

from __future__ import annotations

import asyncio

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.framer import Framer


class FakeTransport(asyncio.Transport):
    """Collects what the session writes; closing reports connection_lost like asyncio does."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.framer = Framer()
        self.frames: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.frames += self.framer.feed(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def take(self) -> list[p.Pdu]:
        out = [codec.decode(frame) for frame in self.frames]
        self.frames.clear()
        return out

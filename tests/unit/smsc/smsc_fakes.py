"""A transport for driving the simulator's SMPP connection without sockets."""

from __future__ import annotations

import asyncio

from jingxin.channels.smpp.framer import Framer


class FakeTransport(asyncio.Transport):
    """Collects the frames the simulator writes; ``closed`` once it closes."""

    def __init__(self) -> None:
        super().__init__()
        self.framer, self.frames, self.closed = Framer(), [], False

    def write(self, data: bytes) -> None:
        self.frames += self.framer.feed(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

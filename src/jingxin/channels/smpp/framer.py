"""Cut a TCP byte stream into whole SMPP PDUs: 4-octet command_length, then the rest.

The length is checked against ``max_length`` as soon as its 4 octets arrive, before any
body is buffered, so a hostile peer cannot make us hold a 4 GiB "PDU".
"""

from __future__ import annotations

from jingxin.channels.smpp.codec import DEFAULT_MAX_PDU_LENGTH, check_length


class Framer:
    """Feed it bytes as they arrive; it returns the complete PDUs (as ``bytes``)."""

    __slots__ = ("_buffer", "max_length")

    def __init__(self, *, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete PDU. Raises PduError (fatal) on a bad length."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        pos = 0
        available = len(buffer)
        max_length = self.max_length
        while available - pos >= 4:
            length = int.from_bytes(buffer[pos : pos + 4], "big")
            if length < 16 or length > max_length:
                del buffer[:]
                check_length(length, max_length)
            if available - pos < length:
                break
            frames.append(bytes(buffer[pos : pos + length]))
            pos += length
        if pos:
            del buffer[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Octets of an incomplete PDU held back."""
        return len(self._buffer)

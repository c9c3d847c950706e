"""Cut a CMPP byte stream into PDUs, whatever the TCP segmentation.

Total_Length is checked as soon as its four octets arrive: below 12 or above the largest
legal CMPP 2.0 PDU (:data:`~jingxin.channels.cmpp.fields.MAX_PDU_LENGTH`) the stream is
broken and :class:`ProtocolError` is raised before anything is waited for or allocated.
After an error the framer (and its connection) must be dropped: CMPP has no way to
resynchronise.
"""

from __future__ import annotations

import struct

from jingxin.channels.cmpp.fields import HEADER_LENGTH, MAX_PDU_LENGTH
from jingxin.channels.cmpp.pdu import Pdu, decode
from jingxin.errors import ProtocolError

_LENGTH = struct.Struct(">I")


class Framer:
    """Feed bytes in, take whole decoded PDUs out."""

    def __init__(self, *, max_length: int = MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length

    def feed(self, data: bytes) -> list[Pdu]:
        buffer = self._buffer
        buffer += data
        pdus: list[Pdu] = []
        start = 0
        available = len(buffer)
        while available - start >= 4:
            (total,) = _LENGTH.unpack_from(buffer, start)
            if total < HEADER_LENGTH or total > self._max_length:
                raise ProtocolError(
                    f"Total_Length {total} outside {HEADER_LENGTH}..{self._max_length}: "
                    "not a CMPP 2.0 stream"
                )
            if available - start < total:
                break
            pdus.append(decode(bytes(buffer[start : start + total])))
            start += total
        if start:
            del buffer[:start]
        return pdus

    @property
    def pending(self) -> int:
        """Octets received but not yet a whole PDU."""
        return len(self._buffer)

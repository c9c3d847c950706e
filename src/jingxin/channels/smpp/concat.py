"""Concatenated SMS: build and parse the UDH concatenation header, and reassemble MO parts.

UDH layouts (PROTOCOLS.md §1.14): ``05 00 03 RR TT SS`` (8-bit reference) and
``06 08 04 RH RL TT SS`` (16-bit reference), with esm_class UDHI (0x40). The SAR TLVs
(sar_msg_ref_num / sar_total_segments / sar_segment_seqnum) carry the same three numbers
without a header; :func:`concat_info` reads either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UDHI = 0x40


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Which part of which message: 1 <= seq <= total."""

    ref: int
    total: int
    seq: int


def build_udh(ref: int, total: int, seq: int, *, ref16: bool = False) -> bytes:
    """The concatenation UDH (with its UDHL octet) for part ``seq`` of ``total``."""
    if not 1 <= seq <= total <= 255:
        raise ValueError(f"concatenation part {seq}/{total} out of range 1..255")
    if ref16:
        return bytes((6, 0x08, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))
    return bytes((5, 0x00, 3, ref & 0xFF, total, seq))


def split_udh(data: bytes) -> tuple[ConcatInfo | None, bytes]:
    """Parse a UDH at the start of ``data``: (concat info or None, the user data after it).

    A header whose length runs past the data is treated as no header at all; an
    element with total 0, seq 0 or seq > total is ignored (as Android does).
    """
    if not data:
        return None, data
    udhl = data[0]
    if 1 + udhl > len(data):
        return None, data
    info = None
    pos, end = 1, 1 + udhl
    while pos + 2 <= end:
        iei, length = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if pos > end:
            break
        if iei == 0x00 and length == 3:
            info = _checked(value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            info = _checked((value[0] << 8) | value[1], value[2], value[3])
    return info, data[end:]


def _checked(ref: int, total: int, seq: int) -> ConcatInfo | None:
    return ConcatInfo(ref, total, seq) if total and seq and seq <= total else None


def concat_info(esm_class: int, short_message: bytes, tlvs: dict) -> tuple[ConcatInfo | None, bytes]:
    """Concatenation of a deliver_sm from its UDH (when UDHI is set) or its sar_* TLVs."""
    if esm_class & UDHI:
        return split_udh(short_message)
    total = tlvs.get("sar_total_segments")
    seq = tlvs.get("sar_segment_seqnum")
    ref = tlvs.get("sar_msg_ref_num")
    if isinstance(total, int) and isinstance(seq, int) and isinstance(ref, int):
        return _checked(ref, total, seq), short_message
    return None, short_message


@dataclass(slots=True)
class _Group:
    first_seen: float
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    meta: Any = None


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A whole (or, after a timeout, partial) concatenated message."""

    key: tuple
    payload: bytes
    received: int
    total: int
    meta: Any

    @property
    def complete(self) -> bool:
        return self.received == self.total


class Reassembler:
    """Collects parts by (key, ref, total); a group not complete in ``timeout`` s expires."""

    def __init__(self, *, timeout: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._groups: dict[tuple, _Group] = {}

    def add(self, key: tuple, info: ConcatInfo, data: bytes, meta: Any = None) -> Reassembled | None:
        """Store one part; return the whole message when its last part arrives."""
        group_key = (*key, info.ref, info.total)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = _Group(self._clock(), info.total, meta=meta)
        group.parts.setdefault(info.seq, data)  # a repeated part is a resend: keep the first
        if len(group.parts) < info.total:
            return None
        del self._groups[group_key]
        return self._join(group_key, group)

    def expire(self) -> list[Reassembled]:
        """Remove and return the groups older than the timeout (partial payloads)."""
        limit = self._clock() - self.timeout
        old = [key for key, group in self._groups.items() if group.first_seen <= limit]
        return [self._join(key, self._groups.pop(key)) for key in old]

    def __len__(self) -> int:
        return len(self._groups)

    @staticmethod
    def _join(key: tuple, group: _Group) -> Reassembled:
        payload = b"".join(group.parts[seq] for seq in sorted(group.parts))
        return Reassembled(key, payload, len(group.parts), group.total, group.meta)

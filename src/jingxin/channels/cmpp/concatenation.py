"""Long messages: the concatenation UDH we put in front of each MT part, and reassembly of
long MO messages from their parts.

PROTOCOLS.md §3.12: each part carries ``05 00 03 ref N i`` (8-bit reference; we send this
form) or ``06 08 04 refH refL N i`` (16-bit; we read both). MO parts are grouped by
(sender, receiver, reference, N) and joined when all N are in; groups that never complete
are dropped after ``ttl`` seconds, and at most ``max_groups`` wait at once, so a sender of
stray parts cannot grow memory without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from jingxin.errors import ProtocolError

log = logging.getLogger(__name__)

UDH_LENGTH = 6  # 05 00 03 ref N i


@dataclass(frozen=True, slots=True)
class Concat:
    """One part's place in a long message."""

    reference: int
    total: int
    number: int


def concat_udh(*, reference: int, total: int, number: int) -> bytes:
    """The 6-octet UDH of part ``number`` of ``total`` (8-bit reference)."""
    return bytes((5, 0, 3, reference & 0xFF, total, number))


def split_udh(content: bytes) -> tuple[Concat | None, bytes]:
    """Msg_Content with a UDH → (its concatenation element if any, the payload after it)."""
    if not content:
        raise ProtocolError("TP_udhi is set but Msg_Content is empty")
    end = 1 + content[0]
    if end > len(content):
        raise ProtocolError(f"UDH length {content[0]} overruns Msg_Content of {len(content)} octets")
    concat = None
    at = 1
    while at < end:
        if at + 2 > end or at + 2 + content[at + 1] > end:
            raise ProtocolError(f"UDH element at octet {at} overruns the UDH")
        iei, size = content[at], content[at + 1]
        data = content[at + 2 : at + 2 + size]
        if iei == 0x00 and size == 3:
            concat = Concat(data[0], data[1], data[2])
        elif iei == 0x08 and size == 4:
            concat = Concat((data[0] << 8) | data[1], data[2], data[3])
        at += 2 + size
    return concat, content[end:]


@dataclass
class _Group:
    started: float
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Collects MO parts; ``add`` returns the payloads in order once the last one arrives."""

    def __init__(
        self,
        *,
        ttl: float = 600.0,
        max_groups: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_groups = max_groups
        self._clock = clock
        self._groups: dict[Hashable, _Group] = {}

    def add(self, sender: Hashable, concat: Concat, payload: bytes) -> list[bytes] | None:
        if concat.total <= 1 or not 1 <= concat.number <= concat.total:
            return [payload]  # not really part of a long message: pass it on whole
        now = self._clock()
        self._expire(now)
        key = (sender, concat.reference, concat.total)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self._max_groups:
                oldest = next(iter(self._groups))
                log.warning("dropping incomplete long MO %r: too many waiting", oldest)
                del self._groups[oldest]
            group = self._groups[key] = _Group(now)
        group.parts[concat.number] = payload  # a repeated part replaces the earlier copy
        if len(group.parts) < concat.total:
            return None
        del self._groups[key]
        return [group.parts[i] for i in range(1, concat.total + 1)]

    def _expire(self, now: float) -> None:
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if now - group.started < self._ttl:
                return
            log.warning("dropping incomplete long MO %r after %.0f s", key, self._ttl)
            del self._groups[key]

    @property
    def waiting(self) -> int:
        return len(self._groups)

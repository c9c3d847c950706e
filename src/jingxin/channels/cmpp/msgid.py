"""The CMPP 64-bit Msg_Id: its bit layout, building one (the ISMG side) and reading one.

PROTOCOLS.md §3.10 (CMPP30 §8.4.3.2): from the most significant bit, month 4 · day 5 ·
hour 5 · minute 6 · second 6 · ISMG (gateway) code 22 · sequence 16. The SP treats the id
as an opaque key; the fields are decoded only for logs and for the simulator.

Text form: jingxin writes a Msg_Id as its **decimal** value (``str(int)``), in
``SubmitResult.message_ids`` and ``DeliveryReceipt.message_id`` alike, so a report matches
its submit by plain string equality.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jingxin.errors import ProtocolError

MAX_MSG_ID = (1 << 64) - 1

# (name, shift, width, minimum, maximum) from the most significant field down.
_LAYOUT = (
    ("month", 60, 4, 1, 12),
    ("day", 55, 5, 1, 31),
    ("hour", 50, 5, 0, 23),
    ("minute", 44, 6, 0, 59),
    ("second", 38, 6, 0, 59),
    ("gateway", 16, 22, 0, (1 << 22) - 1),
    ("sequence", 0, 16, 0, 0xFFFF),
)


@dataclass(frozen=True, slots=True)
class MsgIdFields:
    """The seven fields of a Msg_Id, as found (parse does not judge the values)."""

    month: int
    day: int
    hour: int
    minute: int
    second: int
    gateway: int
    sequence: int


def build(fields: MsgIdFields) -> int:
    """Pack ``fields`` into the 64-bit value; a field out of its range is a ProtocolError."""
    value = 0
    for name, shift, _width, low, high in _LAYOUT:
        field_value = getattr(fields, name)
        if not low <= field_value <= high:
            raise ProtocolError(f"Msg_Id field {name}={field_value} outside {low}..{high}")
        value |= field_value << shift
    return value


def parse(value: int) -> MsgIdFields:
    """Unpack any 64-bit value (total: odd gateways may put odd values in the fields)."""
    if not 0 <= value <= MAX_MSG_ID:
        raise ProtocolError(f"Msg_Id {value} is not a 64-bit unsigned integer")
    return MsgIdFields(
        *((value >> shift) & ((1 << width) - 1) for _n, shift, width, _lo, _hi in _LAYOUT)
    )


def to_text(value: int) -> str:
    """The text form jingxin uses everywhere: the decimal value."""
    return str(value)


def from_text(text: str) -> int:
    """Read the decimal text form back; anything else is a ProtocolError naming it."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ProtocolError(f"Msg_Id {text!r} is not a decimal number") from None
    if not 0 <= value <= MAX_MSG_ID:
        raise ProtocolError(f"Msg_Id {text!r} is not a 64-bit unsigned integer")
    return value


class MsgIdGenerator:
    """Makes Msg_Ids the way an ISMG does: the clock, the gateway code, a 16-bit sequence."""

    def __init__(self, *, gateway: int, clock: Callable[[], datetime] = datetime.now) -> None:
        if not 0 <= gateway < (1 << 22):
            raise ProtocolError(f"Msg_Id gateway code {gateway} outside 0..{(1 << 22) - 1}")
        self._gateway = gateway
        self._clock = clock
        self._sequence = itertools.count()

    def next(self) -> int:
        now = self._clock()
        return build(
            MsgIdFields(
                now.month,
                now.day,
                now.hour,
                now.minute,
                now.second,
                self._gateway,
                next(self._sequence) & 0xFFFF,
            )
        )

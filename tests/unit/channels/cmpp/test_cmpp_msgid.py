"""The 64-bit Msg_Id layout (PROTOCOLS.md §3.10)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.channels.cmpp import msgid
from jingxin.channels.cmpp.msgid import MsgIdFields, MsgIdGenerator
from jingxin.errors import ProtocolError


def test_fields_sit_where_the_spec_puts_them() -> None:
    # Given 12-31 23:59:59, gateway 0x3FFFFF, sequence 0xFFFF: every bit is set
    value = msgid.build(MsgIdFields(12, 31, 23, 59, 59, 0x3FFFFF, 0xFFFF))
    # Then the bits follow spec bit numbers 64..1 (hand-computed shifts)
    assert value == (12 << 60) | (31 << 55) | (23 << 50) | (59 << 44) | (59 << 38) | (0x3FFFFF << 16) | 0xFFFF
    assert msgid.parse(1 << 60).month == 1
    assert msgid.parse(1 << 55).day == 1
    assert msgid.parse(1 << 50).hour == 1
    assert msgid.parse(1 << 44).minute == 1
    assert msgid.parse(1 << 38).second == 1
    assert msgid.parse(1 << 16).gateway == 1
    assert msgid.parse(1).sequence == 1


fields = st.builds(
    MsgIdFields, st.integers(1, 12), st.integers(1, 31), st.integers(0, 23), st.integers(0, 59),
    st.integers(0, 59), st.integers(0, (1 << 22) - 1), st.integers(0, 0xFFFF),
)  # fmt: skip


@given(fields)
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_build_then_parse_round_trips(f: MsgIdFields) -> None:
    value = msgid.build(f)
    assert msgid.parse(value) == f
    assert msgid.from_text(msgid.to_text(value)) == value


@given(st.integers(0, (1 << 64) - 1))
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_parse_is_total_on_64_bit_values(value: int) -> None:
    assert msgid.parse(value) is not None


@pytest.mark.parametrize(
    ("fields", "name"),
    [(MsgIdFields(13, 1, 0, 0, 0, 0, 0), "month"), (MsgIdFields(1, 1, 24, 0, 0, 0, 0), "hour"),
     (MsgIdFields(1, 1, 0, 0, 0, 1 << 22, 0), "gateway")],
)  # fmt: skip
def test_build_refuses_out_of_range_fields(fields: MsgIdFields, name: str) -> None:
    with pytest.raises(ProtocolError, match=name):
        msgid.build(fields)


@pytest.mark.parametrize("text", ["abc", "-1", str(1 << 64), ""])
def test_text_form_must_be_a_64_bit_decimal(text: str) -> None:
    with pytest.raises(ProtocolError):
        msgid.from_text(text)


def test_generator_stamps_clock_and_gateway_and_counts() -> None:
    clock = lambda: datetime(2026, 11, 23, 19, 30, 15)  # noqa: E731
    gen = MsgIdGenerator(gateway=0x1234, clock=clock)
    first, second = msgid.parse(gen.next()), msgid.parse(gen.next())
    assert (first.month, first.day, first.hour, first.minute, first.second) == (11, 23, 19, 30, 15)
    assert first.gateway == 0x1234
    assert second.sequence == first.sequence + 1

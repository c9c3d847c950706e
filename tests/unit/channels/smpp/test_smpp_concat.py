"""UDH build/parse, SAR TLVs, MO reassembly with a timeout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from jingxin.channels.smpp.concat import ConcatInfo, Reassembler, build_udh, concat_info, split_udh


@pytest.mark.parametrize(("ref16", "expected"), [(False, "050003ab0302"), (True, "0608041234" "0302")])
def test_udh_layouts(ref16: bool, expected: str) -> None:
    ref = 0x1234 if ref16 else 0xAB
    assert build_udh(ref, 3, 2, ref16=ref16).hex() == expected


@given(hs.integers(0, 0xFFFF), hs.integers(1, 255), hs.data(), hs.booleans(), hs.binary(max_size=20))
def test_udh_round_trip(ref: int, total: int, data: hs.DataObject, ref16: bool, payload: bytes) -> None:
    seq = data.draw(hs.integers(1, total))
    info, rest = split_udh(build_udh(ref, total, seq, ref16=ref16) + payload)
    assert info == ConcatInfo(ref if ref16 else ref & 0xFF, total, seq)
    assert rest == payload


@pytest.mark.parametrize("raw", ["0500030a0000", "0500030a0203", "09000300", ""])
def test_invalid_or_truncated_udh_gives_no_concat_info(raw: str) -> None:
    assert split_udh(bytes.fromhex(raw))[0] is None


def test_sar_tlvs_are_read_without_udhi() -> None:
    info, body = concat_info(0, b"hi", {"sar_msg_ref_num": 7, "sar_total_segments": 2, "sar_segment_seqnum": 1})
    assert info == ConcatInfo(7, 2, 1) and body == b"hi"


def test_reassembly_in_any_order_and_timeout_of_partial_groups() -> None:
    now = [0.0]
    parts = Reassembler(timeout=10, clock=lambda: now[0])
    # Given parts 2 and 1 of a message, and part 1 of another
    assert parts.add(("a", "b"), ConcatInfo(1, 2, 2), b"world") is None
    assert parts.add(("a", "c"), ConcatInfo(1, 3, 1), b"lonely") is None
    whole = parts.add(("a", "b"), ConcatInfo(1, 2, 1), b"hello ")
    # Then the first is whole, in order; the second expires only after the timeout
    assert whole is not None and whole.payload == b"hello world" and whole.complete
    assert parts.expire() == []
    now[0] = 10.0
    (partial,) = parts.expire()
    assert (partial.payload, partial.received, partial.total, partial.complete) == (b"lonely", 1, 3, False)
    assert len(parts) == 0

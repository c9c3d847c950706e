"""Framer: whole PDUs out of arbitrary chunks; bad lengths refused before buffering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.framer import Framer

STREAM = [
    codec.encode(p.EnquireLink(1)),
    codec.encode(p.SubmitSm(2, source_addr="1069", destination_addr="8613800138000", short_message=b"x" * 140)),
    codec.encode(p.SubmitSmResp(3, 0, "abc")),
]


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.integers(1, 60), min_size=1, max_size=40))
def test_any_chunking_yields_the_same_pdus(cuts: list[int]) -> None:
    # Given a byte stream of three PDUs cut into arbitrary chunks
    data = b"".join(STREAM)
    framer, frames, pos = Framer(), [], 0
    for size in cuts * 10:
        frames += framer.feed(data[pos : pos + size])
        pos += size
        if pos >= len(data):
            break
    frames += framer.feed(data[pos:])
    # Then exactly the three PDUs come out, and nothing is left buffered
    assert frames == STREAM
    assert framer.buffered == 0


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_bad_length_is_fatal_as_soon_as_its_four_octets_arrive(length: int) -> None:
    framer = Framer(max_length=65536)
    with pytest.raises(codec.PduError) as info:
        framer.feed(length.to_bytes(4, "big"))
    assert info.value.fatal and info.value.status == 0x02
    assert framer.buffered == 0

"""short_message parts: data_coding choice, UDH per part, message_payload mode, decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from jingxin.channels.smpp import short_message as sm
from jingxin.channels.smpp.concat import split_udh
from jingxin.content.encoding import count_parts, is_gsm7

CASES = [
    # text, long_messages, ref16, parts, data_coding, esm_class
    ("hello", "udh", False, 1, 0, 0),
    ("你好", "udh", False, 1, 8, 0),
    ("x" * 160, "udh", False, 1, 0, 0),
    ("x" * 161, "udh", False, 2, 0, 0x40),
    ("x" * 306, "udh", False, 2, 0, 0x40),
    ("x" * 305, "udh", True, 3, 0, 0x40),
    ("中" * 71, "udh", False, 2, 8, 0x40),
    ("中" * 134, "udh", True, 3, 8, 0x40),
    ("中" * 300, "payload", False, 1, 8, 0),
]


@pytest.mark.parametrize(("text", "mode", "ref16", "count", "coding", "esm"), CASES)
def test_parts(text: str, mode, ref16: bool, count: int, coding: int, esm: int) -> None:  # noqa: ANN001
    parts = sm.parts(text, long_messages=mode, ref=0x0102, ref16=ref16)
    assert len(parts) == count
    assert {(part.data_coding, part.esm_class) for part in parts} == {(coding, esm)}
    if esm:
        # Every part carries the same reference and total, seq 1..n, and the text survives
        infos = [split_udh(part.short_message) for part in parts]
        assert [i.seq for i, _ in infos] == list(range(1, count + 1))
        assert {(i.ref, i.total) for i, _ in infos} == {(0x0102 if ref16 else 0x02, count)}
        assert sm.decode(b"".join(body for _, body in infos), coding) == text
        assert all(len(part.short_message) <= 140 or coding == 0 for part in parts)
    elif mode == "payload":
        assert sm.decode(parts[0].tlvs["message_payload"], coding) == text


@pytest.mark.parametrize(("payload", "coding", "text"), [(b"41", 0, "41"), ("你好".encode("utf-16-be"), 8, "你好"),
                                                          (b"caf\xe9", 3, "café"), (b"abc", 1, "abc"), (b"abc", 0xF0, "abc")])  # fmt: skip
def test_decode_by_data_coding(payload: bytes, coding: int, text: str) -> None:
    assert sm.decode(payload, coding) == text


@pytest.mark.parametrize(("seconds", "expected"), [(3600, "000000010000000R"), (90061, "000001010101000R")])
def test_relative_validity(seconds: int, expected: str) -> None:
    assert sm.relative_validity(seconds) == expected


@settings(max_examples=200, deadline=None)
@given(hs.text(hs.sampled_from("abc €{中😀\n"), max_size=400), hs.booleans())
def test_parts_agree_with_the_one_splitter(text: str, ref16: bool) -> None:
    # The fast single-part path and the UDH path give exactly the splitter's part count
    per_part = (152 if is_gsm7(text) else 66) if ref16 else None
    expected = count_parts(text, per_part=per_part).parts
    assert len(sm.parts(text, ref16=ref16)) == expected

"""GSM 03.38 / UCS-2 encoding, parts counting and the splitter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.content.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_PARTS,
    REPLACEMENT,
    count_parts,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    is_gsm7,
    pack_septets,
    split,
    unpack_septets,
)

EMOJI = "\U0001f600"  # 😀, outside the BMP: a surrogate pair in UTF-16


# ------------------------------------------------------------------ alphabet tables


@pytest.mark.parametrize(
    ("septet", "char"),
    [
        (0x00, "@"),
        (0x02, "$"),
        (0x0A, "\n"),
        (0x0D, "\r"),
        (0x24, "¤"),
        (0x40, "¡"),
        (0x5F, "§"),
        (0x60, "¿"),
        (0x11, "_"),
        (0x7F, "à"),
        (0x20, " "),
    ],
)
def test_basic_table_easy_to_miss_positions(septet: int, char: str) -> None:
    # Given the fact sheet's easy-to-miss positions, Then the table holds them there
    assert GSM7_BASIC[septet] == char
    assert encode_gsm7(char) == bytes([septet])


def test_basic_table_has_128_distinct_positions() -> None:
    assert len(GSM7_BASIC) == 128
    assert len(set(GSM7_BASIC)) == 128


@pytest.mark.parametrize("char", ["€", "^", "{", "}", "[", "]", "~", "|", "\\", "\x0c"])
def test_extension_characters_cost_two_septets(char: str) -> None:
    # Given an extension character, When encoded, Then ESC + its code, 2 septets
    assert encode_gsm7(char) == bytes([0x1B, GSM7_EXTENSION[char]])
    assert count_parts(char).units == 2
    assert decode_gsm7(encode_gsm7(char)) == char


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", True),
        ("`", False),
        ("中文", False),
        ("€[]", True),
        (EMOJI, False),
        ("", True),
        ("\x1b", False),
        ("Ä§¿", True),
        ("À", False),
    ],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


def test_encode_gsm7_names_first_bad_character_and_index() -> None:
    # Given text with a backtick at index 3 (not in GSM 03.38)
    # When encoded, Then the error names the character and the index
    with pytest.raises(ValueError, match=r"'`'.*index 3"):
        encode_gsm7("abc`中")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x80abc", REPLACEMENT + "abc"),  # octet above 0x7F
        (b"ab\x1b", "ab" + REPLACEMENT),  # trailing ESC
        (b"\x1b\x41", "A"),  # ESC + unknown code: the basic character
        (b"\x1b\x1b", REPLACEMENT),
        (b"\x1b\xff", REPLACEMENT),
        (b"\x00", "@"),
    ],
)
def test_decode_gsm7_tolerates_bad_septets(data: bytes, expected: str) -> None:
    assert decode_gsm7(data) == expected


@given(st.binary(max_size=300))
def test_decode_gsm7_never_raises(data: bytes) -> None:
    assert isinstance(decode_gsm7(data), str)


@given(st.binary(max_size=200))
def test_decode_gsm7_without_escapes_reads_as_the_octet_by_octet_decoder(data: bytes) -> None:
    # The table path (no ESC) and the loop must agree on every octet, bad ones included
    from jingxin.content.encoding import ESC, _decode_gsm7_escaped

    plain = data.replace(bytes([ESC]), b"")
    assert decode_gsm7(plain) == _decode_gsm7_escaped(plain)


@given(st.binary(max_size=300))
def test_decode_ucs2_never_raises(data: bytes) -> None:
    assert isinstance(decode_ucs2(data), str)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xd8\x3d", REPLACEMENT),
        (b"\x00A\x00", "A" + REPLACEMENT),
        (b"\xd8\x3d\xde\x00", EMOJI),
        (b"\x4e\x2d", "中"),
    ],
)
def test_decode_ucs2_cases(data: bytes, expected: str) -> None:
    assert decode_ucs2(data) == expected


def test_encode_ucs2_uses_surrogate_pairs() -> None:
    assert encode_ucs2(EMOJI) == b"\xd8\x3d\xde\x00"
    assert encode_ucs2("中A") == b"\x4e\x2d\x00\x41"


# ------------------------------------------------------------------ packing


def test_pack_known_vector() -> None:
    # Given the classic example "hellohello", Then it packs to the published octets
    assert pack_septets(encode_gsm7("hellohello")).hex() == "e8329bfd4697d9ec37"


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_unpack_round_trip(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill_bits=fill)
    assert len(packed) == (len(septets) * 7 + fill + 7) // 8
    assert unpack_septets(packed, len(septets), fill_bits=fill) == septets


def test_pack_rejects_septet_above_0x7f() -> None:
    with pytest.raises(ValueError, match="index 1"):
        pack_septets(b"a\x80")


def test_160_septets_pack_into_140_octets() -> None:
    assert len(pack_septets(b"a" * 160)) == 140


# ------------------------------------------------------------------ parts table


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts", "remaining"),
    [
        ("", "gsm7", 0, 1, 160),
        ("a" * 160, "gsm7", 160, 1, 0),
        ("a" * 161, "gsm7", 161, 2, 145),
        ("€" * 80, "gsm7", 160, 1, 0),
        ("€" * 81, "gsm7", 162, 2, 153 * 2 - 162 - 1),  # 76 € per part: 152 septets
        ("a" * 153 * 2, "gsm7", 306, 2, 0),
        ("a" * (153 * 2 + 1), "gsm7", 307, 3, 152),
        ("中" * 70, "ucs2", 70, 1, 0),
        ("中" * 71, "ucs2", 71, 2, 63),
        ("中" * 67 * 2, "ucs2", 134, 2, 0),
        ("中" * (67 * 2 + 1), "ucs2", 135, 3, 66),
        (EMOJI * 35, "ucs2", 70, 1, 0),
        (EMOJI * 36, "ucs2", 72, 2, 67 * 2 - 72 - 1),  # 33 emoji per part: 66 units
        ("【精信】您好abc", "ucs2", 9, 1, 61),
        ("Hi 中国 Mobile 10086", "ucs2", 18, 1, 52),
    ],
)
def test_count_parts_table(
    text: str, encoding: str, units: int, parts: int, remaining: int
) -> None:
    info = count_parts(text)
    assert (info.encoding, info.units, info.parts, info.remaining) == (
        encoding,
        units,
        parts,
        remaining,
    )
    assert info.single_limit == (160 if encoding == "gsm7" else 70)
    assert info.per_part == (153 if encoding == "gsm7" else 67)
    assert len(split(text)) == parts


def test_esc_pair_straddling_boundary_moves_to_next_part() -> None:
    # Given 152 plain septets then '€' (2 septets) then more: the pair would cross 153
    text = "a" * 152 + "€" + "b" * 20
    segments = split(text)
    # Then the first part stops at 152 septets and the ESC pair starts part 2 whole
    assert segments[0].units == 152 and segments[0].text == "a" * 152
    assert segments[1].payload[:2] == b"\x1b\x65"
    assert "".join(s.text for s in segments) == text


def test_surrogate_pair_straddling_boundary_moves_to_next_part() -> None:
    # Given 66 Chinese characters then an emoji that would occupy units 67-68
    text = "中" * 66 + EMOJI + "文" * 10
    segments = split(text)
    assert segments[0].units == 66 and segments[0].text == "中" * 66
    assert segments[1].text.startswith(EMOJI)
    assert count_parts(text).parts == len(segments)


def test_per_part_override_for_16_bit_reference_udh() -> None:
    assert count_parts("a" * 305, per_part=152).parts == 3
    assert [s.units for s in split("中" * 140, per_part=66)] == [66, 66, 8]


def test_forced_ucs2_for_gsm_text_and_bad_forced_gsm7() -> None:
    assert count_parts("hello", encoding="ucs2").encoding == "ucs2"
    assert split("hello", encoding="ucs2")[0].payload == "hello".encode("utf-16-be")
    with pytest.raises(ValueError, match="中"):
        split("中", encoding="gsm7")
    with pytest.raises(ValueError, match="unknown encoding"):
        count_parts("x", encoding="latin1")


def test_too_many_parts_refused() -> None:
    with pytest.raises(ValueError, match="parts"):
        split("中" * (67 * MAX_PARTS + 1))


# ------------------------------------------------------------------ invariants

GSM_TEXT = st.text(
    alphabet=st.sampled_from([c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION)),
    max_size=700,
)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@given(GSM_TEXT)
def test_gsm7_round_trip(text: str) -> None:
    assert decode_gsm7(encode_gsm7(text)) == text


@given(ANY_TEXT)
def test_ucs2_round_trip(text: str) -> None:
    assert decode_ucs2(encode_ucs2(text)) == text


@settings(max_examples=150)
@given(st.one_of(GSM_TEXT, ANY_TEXT), st.sampled_from([None, (160, 153), (160, 152), (70, 66)]))
def test_split_rejoins_and_respects_limits(text: str, limits: tuple[int, int] | None) -> None:
    kwargs = {} if limits is None else {"single_limit": limits[0], "per_part": limits[1]}
    info = count_parts(text, **kwargs)
    segments = split(text, **kwargs)
    # Then the segments re-join to the text, agree with count_parts, and fit their limits
    assert "".join(s.text for s in segments) == text
    assert len(segments) == info.parts
    assert sum(s.units for s in segments) == info.units
    limit = info.single_limit if info.parts == 1 else info.per_part
    decode = decode_gsm7 if info.encoding == "gsm7" else decode_ucs2
    for s in segments:
        assert s.units <= limit
        assert decode(s.payload) == s.text
        assert s.units == (len(s.payload) if info.encoding == "gsm7" else len(s.payload) // 2)
    assert info.remaining == limit - segments[-1].units

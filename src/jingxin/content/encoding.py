"""SMS text encodings and the ONE splitter: GSM 03.38 7-bit, UCS-2, parts and segments.

Every part count in jingxin (template preview, review, policy cost, channels) comes from
:func:`count_parts` / :func:`split` here, so a message is billed, checked and sent as the
same number of parts. Facts: docs PROTOCOLS.md §1.10, §1.14, §2.

* GSM-7: one septet per basic character, two (ESC 0x1B + code) per extension character;
  160 septets fit one SM, 153 per part with an 8-bit-reference UDH (152 with a 16-bit one).
* UCS-2 (really UTF-16-BE): one unit per BMP character, two (a surrogate pair) above it;
  70 units fit one SM, 67 per part (66 with a 16-bit-reference UDH).
* A part never ends between ESC and its code, nor between the halves of a surrogate pair,
  so a part may hold one unit less than ``per_part``.

Payloads are *unpacked* septets (one per octet), what SMPP data_coding 0 usually carries;
:func:`pack_septets` / :func:`unpack_septets` do GSM packing for links that need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]
GSM7: Encoding = "gsm7"
UCS2: Encoding = "ucs2"

ESC = 0x1B
MAX_PARTS = 255  # the UDH / SAR total-segments field is one octet
REPLACEMENT = "\ufffd"  # what decoders put where the bytes mean nothing

# Index = septet value. 0x1B is the escape to the extension table, not a character:
# it is held here as "\x1b" only so the string has 128 positions.
GSM7_BASIC: str = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128

GSM7_EXTENSION: dict[str, int] = {
    "\x0c": 0x0A,  # form feed
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

SINGLE_LIMIT: dict[str, int] = {GSM7: 160, UCS2: 70}
PER_PART: dict[str, int] = {GSM7: 153, UCS2: 67}

_BASIC_CODE = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_GSM_CHARS = frozenset(_BASIC_CODE) | frozenset(GSM7_EXTENSION)
_EXTENSION_CHARS = tuple(GSM7_EXTENSION)
# A negated class stops at the first non-GSM character: Chinese text fails at once.
_NON_GSM = re.compile("[^" + "".join(re.escape(ch) for ch in sorted(_GSM_CHARS)) + "]")
_EXTENSION_BY_CODE = {code: ch for ch, code in GSM7_EXTENSION.items()}
# decode_gsm7 without ESC: each octet (as a latin-1 character) to its basic character.
_DECODE_BASIC = {code: GSM7_BASIC[code] for code in range(0x80) if code != ESC} | {
    code: REPLACEMENT for code in range(0x80, 0x100)
}
# str.translate maps each character straight to its septet(s), then latin-1 gives the bytes.
_ENCODE_TABLE = {ord(ch): chr(code) for ch, code in _BASIC_CODE.items()} | {
    ord(ch): chr(ESC) + chr(code) for ch, code in GSM7_EXTENSION.items()
}


# --------------------------------------------------------------------------- GSM 7-bit


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return _NON_GSM.search(text) is None


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets (one per octet); extension characters become ESC + code.

    Raises :class:`ValueError` naming the first character that GSM-7 cannot carry.
    """
    bad = _NON_GSM.search(text)
    if bad is not None:
        index, ch = bad.start(), bad.group()
        raise ValueError(
            f"character {ch!r} (U+{ord(ch):04X}) at index {index} is not in the GSM 03.38 alphabet"
        )
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Unpacked septets back to text; never raises.

    An octet above 0x7F or a trailing ESC becomes :data:`REPLACEMENT`. ESC followed by a
    code the extension table lacks shows the basic character of that code, as TS 23.038
    asks of a receiver that does not know the extension.
    """
    if ESC not in data:
        # No escapes (nearly every MO): one table lookup per octet in C, ~10x the loop.
        return data.decode("latin-1").translate(_DECODE_BASIC)
    return _decode_gsm7_escaped(data)


def _decode_gsm7_escaped(data: bytes) -> str:
    """:func:`decode_gsm7` octet by octet, for text with ESC sequences."""
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        septet = data[i]
        i += 1
        if septet > 0x7F:
            out.append(REPLACEMENT)
        elif septet != ESC:
            out.append(GSM7_BASIC[septet])
        elif i >= n:
            out.append(REPLACEMENT)
        else:
            code = data[i]
            i += 1
            if code in _EXTENSION_BY_CODE:
                out.append(_EXTENSION_BY_CODE[code])
            elif code > 0x7F or code == ESC:
                out.append(REPLACEMENT)
            else:
                out.append(GSM7_BASIC[code])
    return "".join(out)


def gsm7_septets(text: str) -> int:
    """Septets ``text`` takes in GSM-7 (extension characters count 2); assumes :func:`is_gsm7`."""
    return len(text) + sum(text.count(ch) for ch in _EXTENSION_CHARS)


def pack_septets(septets: bytes, *, fill_bits: int = 0) -> bytes:
    """Pack septets 8-into-7 octets, bit 0 first (GSM 03.38 §6.1.2.1.1).

    ``fill_bits`` (0–6) zero bits go first, so text after a UDH starts on a septet boundary.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    acc, nbits = 0, fill_bits
    out = bytearray()
    for index, septet in enumerate(septets):
        if septet > 0x7F:
            raise ValueError(f"septet 0x{septet:02X} at index {index} is above 0x7F")
        acc |= septet << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, *, fill_bits: int = 0) -> bytes:
    """Inverse of :func:`pack_septets`: the first ``count`` septets (fewer if data runs out)."""
    if count < 0 or not 0 <= fill_bits <= 6:
        raise ValueError(f"count must be >= 0 and fill_bits 0..6, got {count}, {fill_bits}")
    available = (len(data) * 8 - fill_bits) // 7
    value = int.from_bytes(data, "little") >> fill_bits
    return bytes((value >> (7 * i)) & 0x7F for i in range(min(count, max(available, 0))))


# --------------------------------------------------------------------------- UCS-2


def encode_ucs2(text: str) -> bytes:
    """UTF-16-BE: BMP characters as one unit, others as a surrogate pair.

    Lone surrogates in ``text`` pass through as single units rather than raising.
    """
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    """UTF-16-BE back to text; never raises (lone surrogates and an odd tail octet → U+FFFD)."""
    return bytes(data).decode("utf-16-be", "replace")


def ucs2_units(text: str) -> int:
    """UTF-16 code units of ``text`` (non-BMP characters count 2)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-be", "surrogatepass")) // 2


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class PartsInfo:
    """How a text travels: encoding, units, parts and how much room the last part has left."""

    encoding: Encoding
    units: int  # septets (gsm7) or UTF-16 code units (ucs2)
    parts: int
    single_limit: int
    per_part: int
    remaining: int  # units still free in the last part


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a message: its text, encoded payload and size in units."""

    text: str
    payload: bytes  # unpacked septets for gsm7, UTF-16-BE for ucs2
    units: int


def _choose(
    text: str, encoding: str | None, single_limit: int | None, per_part: int | None
) -> tuple[Encoding, int, int]:
    if encoding is None:
        chosen: Encoding = GSM7 if is_gsm7(text) else UCS2
    elif encoding in (GSM7, UCS2):
        chosen = encoding  # type: ignore[assignment]
        if chosen == GSM7 and not is_gsm7(text):
            encode_gsm7(text)  # raises the ValueError that names the character
    else:
        raise ValueError(f"unknown encoding {encoding!r}: use 'gsm7' or 'ucs2'")
    single = SINGLE_LIMIT[chosen] if single_limit is None else single_limit
    part = PER_PART[chosen] if per_part is None else per_part
    if single < 2 or part < 2:
        raise ValueError(f"single_limit and per_part must be >= 2, got {single}, {part}")
    return chosen, single, part


def _unit_costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _has_double(text: str, encoding: Encoding) -> bool:
    if encoding == GSM7:
        return any(ch in text for ch in _EXTENSION_CHARS)
    return not text.isascii() and len(text.encode("utf-16-be", "surrogatepass")) != 2 * len(text)


def _cuts(text: str, encoding: Encoding, per_part: int) -> list[tuple[int, int, int]]:
    """(start, end, units) character ranges of each part, packing greedily."""
    if not _has_double(text, encoding):
        return [
            (start, min(start + per_part, len(text)), min(per_part, len(text) - start))
            for start in range(0, len(text), per_part)
        ]
    cuts: list[tuple[int, int, int]] = []
    start, used = 0, 0
    for index, cost in enumerate(_unit_costs(text, encoding)):
        if used + cost > per_part:
            cuts.append((start, index, used))
            start, used = index, 0
        used += cost
    cuts.append((start, len(text), used))
    return cuts


def count_parts(
    text: str,
    *,
    encoding: str | None = None,
    single_limit: int | None = None,
    per_part: int | None = None,
) -> PartsInfo:
    """Encoding, units and parts of ``text``; always agrees with ``len(split(text))``.

    An empty text is one (empty) part.
    """
    chosen, single, part = _choose(text, encoding, single_limit, per_part)
    units = gsm7_septets(text) if chosen == GSM7 else ucs2_units(text)
    if units <= single:
        return PartsInfo(chosen, units, 1, single, part, single - units)
    cuts = _cuts(text, chosen, part)
    return PartsInfo(chosen, units, len(cuts), single, part, part - cuts[-1][2])


def split(
    text: str,
    *,
    encoding: str | None = None,
    single_limit: int | None = None,
    per_part: int | None = None,
) -> list[Segment]:
    """The segments to send: one if ``text`` fits ``single_limit``, else ``per_part``-sized ones.

    Never splits an ESC pair or a surrogate pair. Raises :class:`ValueError` when ``text``
    cannot be carried in ``encoding`` or would need more than 255 parts.
    """
    chosen, single, part = _choose(text, encoding, single_limit, per_part)
    encode = encode_gsm7 if chosen == GSM7 else encode_ucs2
    units = gsm7_septets(text) if chosen == GSM7 else ucs2_units(text)
    if units <= single:
        return [Segment(text, encode(text), units)]
    cuts = _cuts(text, chosen, part)
    if len(cuts) > MAX_PARTS:
        raise ValueError(f"text needs {len(cuts)} parts; at most {MAX_PARTS} can be sent")
    return [Segment(text[a:b], encode(text[a:b]), n) for a, b, n in cuts]

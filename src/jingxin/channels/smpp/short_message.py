"""Text to short_message parts for submit_sm, and deliver_sm payloads back to text.

Encoding and splitting come from :mod:`jingxin.content.encoding` (the one splitter, so a
message is billed, reviewed and sent as the same parts). data_coding 0 carries unpacked
GSM 03.38 septets, 8 carries UCS-2 (PROTOCOLS.md §1.10, §2.3). Long messages either get a
concatenation UDH per part (``udh``, esm_class 0x40) or travel whole in message_payload
(``payload``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jingxin.channels.smpp.concat import UDHI, build_udh
from jingxin.content import encoding

DC_DEFAULT, DC_IA5, DC_LATIN1, DC_UCS2 = 0x00, 0x01, 0x03, 0x08
LongMessages = Literal["udh", "payload"]


@dataclass(frozen=True, slots=True)
class Part:
    """What one submit_sm carries for one part of a message."""

    short_message: bytes
    esm_class: int
    data_coding: int
    tlvs: dict


def parts(text: str, *, long_messages: LongMessages = "udh", ref: int = 0, ref16: bool = False) -> list[Part]:
    """The submit_sm payloads for ``text``: one per part, in order. Raises ValueError."""
    gsm = encoding.is_gsm7(text)
    # Fast path for the common single-part message: one encode, no splitting. The limits
    # are the splitter's own (160 septets / 70 UTF-16 units), so the answer is the same.
    whole = encoding.encode_gsm7(text) if gsm else encoding.encode_ucs2(text)
    coding = DC_DEFAULT if gsm else DC_UCS2
    if len(whole) <= (encoding.SINGLE_LIMIT[encoding.GSM7] if gsm else 2 * encoding.SINGLE_LIMIT[encoding.UCS2]):
        return [Part(whole, 0, coding, {})]
    if long_messages == "payload":
        return [Part(b"", 0, coding, {"message_payload": whole})]
    per_part = None
    if ref16:
        per_part = 152 if gsm else 66
    segments = encoding.split(text, per_part=per_part)
    total = len(segments)
    return [
        Part(build_udh(ref, total, seq, ref16=ref16) + segment.payload, UDHI, coding, {})
        for seq, segment in enumerate(segments, start=1)
    ]


def decode(payload: bytes, data_coding: int) -> str:
    """Text of a deliver_sm payload (UDH already removed). Never raises."""
    if data_coding == DC_UCS2 or (data_coding & 0xF0 in (0x00, 0x10) and data_coding & 0x0C == 0x08):
        return encoding.decode_ucs2(payload)
    if data_coding == DC_DEFAULT or (data_coding & 0xF0 == 0xF0 and not data_coding & 0x04):
        return encoding.decode_gsm7(payload)
    if data_coding == DC_IA5:
        return payload.decode("ascii", "replace")
    return payload.decode("latin-1")


def relative_validity(seconds: int) -> str:
    """SMPP relative time ``YYMMDDhhmmss000R`` for a validity of ``seconds`` (max 99 days)."""
    seconds = max(0, min(seconds, 99 * 86400 + 86399))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"

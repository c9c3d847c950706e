"""The text of a received MO payload: SMPP data_coding or CMPP Msg_Fmt → str, or "undecodable".

No decoder of its own: GSM 03.38 and UCS-2 come from :mod:`jingxin.content.encoding`
through the channels' pure decode functions (SMPP ``short_message.decode``, CMPP
``inbound.decode_text``, which reads Msg_Fmt 15 as GB18030 ⊇ GBK). A payload that is binary
by its coding, or that decodes only with replacement characters (an odd UCS-2 tail, bytes
that are no GBK, a NUL character PostgreSQL text cannot hold), is undecodable: its text is
the payload as hex, so it is still stored and a person can read it later.
"""

from __future__ import annotations

from jingxin.channels.cmpp.inbound import decode_text
from jingxin.channels.smpp.short_message import decode as smpp_decode
from jingxin.content.encoding import REPLACEMENT


def mo_text(*, protocol: str, coding: int, payload: bytes) -> tuple[str, bool]:
    """(text, undecodable). Never raises."""
    if protocol == "cmpp":
        text, binary = decode_text(payload, coding)
        if binary:
            return payload.hex(), True
    else:
        if smpp_binary(coding):
            return payload.hex(), True
        text = smpp_decode(payload, coding)
    if REPLACEMENT in text or "\x00" in text or (coding == 8 and len(payload) % 2):
        return payload.hex(), True
    return text, False


def smpp_binary(coding: int) -> bool:
    """8-bit data codings of SMPP 3.4 §5.2.19 / TS 23.038 (no text to read)."""
    if coding in (0x02, 0x04):
        return True
    if coding & 0xF0 == 0xF0:
        return bool(coding & 0x04)
    return coding & 0xC0 == 0x00 and coding >= 0x10 and coding & 0x0C == 0x04

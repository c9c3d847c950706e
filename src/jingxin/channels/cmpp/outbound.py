"""OutboundSms → the CMPP_SUBMIT PDUs of its parts.

Encoding (PROTOCOLS.md §3.11, §3.12): pure-ASCII text of at most 159 characters goes as
**Msg_Fmt 0** in one part (the 2.0 limit is "Msg_Length < 160"); everything else goes as
**Msg_Fmt 8 (UCS-2)**: 70 UTF-16 units in one part, otherwise parts of 67 units behind a
6-octet UDH (TP_udhi = 1, Pk_total / Pk_number set). We never send Msg_Fmt 15 (GBK): some
gateways reject or rewrite it. Long ASCII therefore also goes as UCS-2 — it costs more parts
than 7-bit packing would, but how a gateway packs a Msg_Fmt 0 part behind a UDH is
deployment-specific, and UCS-2 is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from jingxin.channels.cmpp.concatenation import concat_udh
from jingxin.channels.cmpp.fields import MsgFmt
from jingxin.channels.cmpp.pdu import Submit

# ValId_Time is an SMPP 3.3 relative time (CMPP 2.0 §1.7): the same string as SMPP's.
from jingxin.channels.smpp.short_message import relative_validity
from jingxin.content.encoding import split
from jingxin.domain.sms import OutboundSms
from jingxin.errors import ChannelError

ASCII_SINGLE_LIMIT = 159
UCS2_SINGLE_LIMIT = 70
UCS2_PER_PART = 67  # (140 - 6-octet UDH) / 2
MAX_PARTS = 255  # Pk_total is one octet


@dataclass(frozen=True)
class SubmitDefaults:
    """Fields of every SUBMIT that an OutboundSms does not carry (§3.5)."""

    sp_id: str  # Msg_src: the SP's enterprise code, the same as CONNECT's Source_Addr
    src_id: str  # Src_Id: the service number shown to the handset (OutboundSms may override)
    service_id: str = ""
    fee_user_type: int = 2  # 2 = the SP pays; with FeeType 01 (free) nobody is charged
    fee_type: str = "01"
    fee_code: str = "000000"


def contents(text: str) -> tuple[int, list[bytes]]:
    """(Msg_Fmt, the payload of each part without UDH)."""
    if text.isascii() and len(text) <= ASCII_SINGLE_LIMIT:
        return MsgFmt.ASCII, [text.encode("ascii")]
    segments = split(
        text, encoding="ucs2", single_limit=UCS2_SINGLE_LIMIT, per_part=UCS2_PER_PART
    )
    if len(segments) > MAX_PARTS:
        raise ChannelError(f"message of {len(text)} characters needs {len(segments)} parts (max 255)")
    return MsgFmt.UCS2, [s.payload for s in segments]


def submits(message: OutboundSms, *, defaults: SubmitDefaults, reference: int) -> list[Submit]:
    """One SUBMIT per part; ``reference`` goes in the UDH of a long message."""
    fmt, payloads = contents(message.text)
    total = len(payloads)
    src_id = message.source_addr or defaults.src_id
    valid = "" if message.validity_seconds is None else relative_validity(message.validity_seconds)
    pdus = []
    for number, payload in enumerate(payloads, start=1):
        udh = concat_udh(reference=reference, total=total, number=number) if total > 1 else b""
        pdus.append(
            Submit(
                dest_terminal_ids=(message.destination,),
                msg_content=udh + payload,
                pk_total=total,
                pk_number=number,
                registered_delivery=1 if message.registered_delivery else 0,
                msg_level=max(0, min(message.priority, 9)),
                service_id=defaults.service_id,
                fee_user_type=defaults.fee_user_type,
                tp_udhi=1 if total > 1 else 0,
                msg_fmt=fmt,
                msg_src=defaults.sp_id,
                fee_type=defaults.fee_type,
                fee_code=defaults.fee_code,
                valid_time=valid,
                src_id=src_id,
            )
        )
    return pdus

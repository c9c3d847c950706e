"""MO parts as channels hand them over, built with the real encoders (for the MO tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jingxin.channels.cmpp import outbound
from jingxin.channels.smpp import short_message
from jingxin.channels.smpp.concat import concat_info
from jingxin.domain.sms import MoPart

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def smpp_parts(text: str, *, source="8613800000001", destination="10690001", ref=7,
               at: datetime = T0) -> list[MoPart]:  # fmt: skip
    """What an SMPP channel hands over for ``text`` sent as an MO (one per deliver_sm)."""
    out = []
    for i, part in enumerate(short_message.parts(text, ref=ref)):
        info, data = concat_info(part.esm_class, part.short_message, part.tlvs)
        out.append(MoPart(
            protocol="smpp", source=source, destination=destination, coding=part.data_coding,
            payload=data, received_at=at + timedelta(milliseconds=i),
            ref=info.ref if info else None, total=info.total if info else None,
            seq=info.seq if info else None,
        ))  # fmt: skip
    return out


def cmpp_parts(text: str, *, source="8613900000002", destination="1069012345", ref=9,
               msg_ids=None, gbk: bool = False, at: datetime = T0) -> list[MoPart]:  # fmt: skip
    """What a CMPP channel hands over (Msg_Fmt 8 UCS-2, or 15 GBK when ``gbk``)."""
    if gbk:
        fmt, payloads = 15, [text.encode("gbk")]
    else:
        fmt, payloads = outbound.contents(text)
    total = len(payloads)
    ids = msg_ids or [f"{ref}{n:04d}" for n in range(1, total + 1)]
    return [
        MoPart(protocol="cmpp", source=source, destination=destination, coding=int(fmt),
               payload=payload, received_at=at + timedelta(milliseconds=n),
               ref=ref if total > 1 else None, total=total if total > 1 else None,
               seq=n if total > 1 else None, smsc_id=ids[n - 1])  # fmt: skip
        for n, payload in enumerate(payloads, start=1)
    ]

"""CMPP_DELIVER → :class:`DeliveryReceipt` (Registered_Delivery = 1) or the payload of a
:class:`MobileOriginated` (Registered_Delivery = 0), or, for the durable inbox, one raw
:class:`MoPart` per MO DELIVER (:func:`mo_part`).

Report times (Submit_time, Done_time: YYMMDDHHMM, §3.8) are read as Beijing time. A Stat
of the ISMG's own ``XX:nnnn`` form (MA, MB, MC, CA, … §3.8) is a failure that never reached
the handset: UNDELIV with the code kept in ``error_code``; any other unknown Stat becomes
UNKNOWN, also with its text kept.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime

from jingxin.channels.cmpp import msgid
from jingxin.channels.cmpp.auth import BEIJING
from jingxin.channels.cmpp.concatenation import split_udh
from jingxin.channels.cmpp.fields import MsgFmt, udhi_set
from jingxin.channels.cmpp.pdu import Deliver
from jingxin.channels.cmpp.report import StatusReport
from jingxin.domain.sms import DeliveryReceipt, MoPart, ReceiptStatus
from jingxin.errors import ProtocolError

_ISMG_CODE = re.compile(r"^[A-Z]{2}:\d{4}$")
_STATUSES = {s.value: s for s in ReceiptStatus}


@functools.lru_cache(maxsize=4096)  # minute resolution: reports share a handful of values
def report_time(value: str) -> datetime | None:
    """YYMMDDHHMM in Beijing time (years 00–99 → 2000–2099); None when it is not a time."""
    if len(value) != 10 or not (value.isascii() and value.isdigit()):
        return None
    try:  # by hand: strptime costs more than the rest of a receipt
        return datetime(
            2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]),
            int(value[6:8]), int(value[8:10]), tzinfo=BEIJING,
        )  # fmt: skip
    except ValueError:
        return None


def receipt_status(stat: str) -> tuple[ReceiptStatus, str | None]:
    status = _STATUSES.get(stat)
    if status is not None:
        return status, None
    if _ISMG_CODE.match(stat):
        return ReceiptStatus.UNDELIVERABLE, stat
    return ReceiptStatus.UNKNOWN, stat


def receipt(deliver: Deliver, *, received_at: datetime) -> DeliveryReceipt:
    """The report in ``deliver``; ProtocolError when its content is not 60 octets."""
    report = StatusReport.decode(deliver.msg_content)
    status, error = receipt_status(report.stat)
    message_id = msgid.to_text(report.msg_id)
    return DeliveryReceipt(
        message_id=message_id,
        status=status,
        error_code=error,
        submit_date=report_time(report.submit_time),
        done_date=report_time(report.done_time),
        destination=report.dest_terminal_id,
        raw=(
            f"id:{message_id} stat:{report.stat} "
            f"submit_time:{report.submit_time} done_time:{report.done_time} "
            f"dest:{report.dest_terminal_id} smsc_sequence:{report.smsc_sequence}"
        ),
        received_at=received_at,
    )


def decode_text(payload: bytes, msg_fmt: int) -> tuple[str, bool]:
    """(text, is_binary). Binary formats (3, 4, unknown) come back as hex."""
    if msg_fmt == MsgFmt.UCS2:
        return payload.decode("utf-16-be", errors="replace"), False
    if msg_fmt == MsgFmt.GBK:
        return payload.decode("gb18030", errors="replace"), False  # GB18030 ⊇ GBK
    if msg_fmt == MsgFmt.ASCII:
        return payload.decode("latin-1"), False
    return payload.hex(), True


def mo_part(deliver: Deliver, *, received_at: datetime, channel: str) -> MoPart:
    """One MO DELIVER as it came (UDH removed when TP_udhi says there is one). A UDH that
    does not parse leaves the whole Msg_Content as the payload of a single part, so the
    message is still stored (marked, not dropped)."""
    payload, concat = deliver.msg_content, None
    extra = {"channel": channel, "service_id": deliver.service_id}
    if udhi_set(deliver.tp_udhi):
        try:
            concat, payload = split_udh(deliver.msg_content)
        except ProtocolError as exc:
            extra["udh_error"] = str(exc)
    if concat is not None and not 1 <= concat.number <= concat.total:
        concat = None  # a header that contradicts itself: keep the part as a message of its own
    return MoPart(
        protocol="cmpp", source=deliver.src_terminal_id, destination=deliver.dest_id,
        coding=deliver.msg_fmt, payload=payload, received_at=received_at,
        ref=concat.reference if concat else None, total=concat.total if concat else None,
        seq=concat.number if concat else None, smsc_id=msgid.to_text(deliver.msg_id), extra=extra,
    )  # fmt: skip

"""CMPP_DELIVER → :class:`DeliveryReceipt` (Registered_Delivery = 1) or the payload of a
:class:`MobileOriginated` (Registered_Delivery = 0).

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
from jingxin.channels.cmpp.fields import MsgFmt
from jingxin.channels.cmpp.pdu import Deliver
from jingxin.channels.cmpp.report import StatusReport
from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus

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

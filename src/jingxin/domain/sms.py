"""Plain types of an SMS on the wire, shared by channels, dispatch and the hall.

They carry no protocol detail: a channel turns an :class:`OutboundSms` into submit_sm or
CMPP_SUBMIT PDUs and turns what comes back into :class:`SubmitResult`,
:class:`DeliveryReceipt` and :class:`MobileOriginated`. A channel wired to the durable
inbox hands over each received MO PDU as a :class:`MoPart` instead (raw, not reassembled),
and acknowledges it only once dispatch has committed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ReceiptStatus(StrEnum):
    """Final (or intermediate) state of a message as the SMSC reports it."""

    DELIVERED = "DELIVRD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"
    UNDELIVERABLE = "UNDELIV"
    ACCEPTED = "ACCEPTD"
    UNKNOWN = "UNKNOWN"
    REJECTED = "REJECTD"
    ENROUTE = "ENROUTE"


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """One logical message to send (the channel splits it into parts)."""

    destination: str  # E.164 without '+', or as the route wants it
    text: str
    source_addr: str | None = None  # None: the channel's default
    registered_delivery: bool = True
    reference: str | None = None  # our id, echoed back in results and logs
    validity_seconds: int | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the SMSC answered for every part of one :class:`OutboundSms`."""

    reference: str | None
    message_ids: tuple[str, ...]  # one SMSC id per part, in part order
    parts: int
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A delivery receipt (SMPP deliver_sm with the receipt bit, CMPP status report)."""

    message_id: str
    status: ReceiptStatus
    error_code: str | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    destination: str | None = None
    raw: str = ""
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MobileOriginated:
    """A message a subscriber sent to us (concatenated parts already reassembled)."""

    source: str
    destination: str
    text: str
    received_at: datetime
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MoPart:
    """One received MO PDU (an SMPP deliver_sm that is no receipt, a CMPP DELIVER with
    Registered_Delivery 0), as it came: payload bytes with any UDH removed, not decoded.

    ``ref``/``total``/``seq`` place it in a long message (all None for a single one);
    ``coding`` is the data_coding (SMPP) or Msg_Fmt (CMPP), read with ``protocol``.
    ``smsc_id`` is the SMSC's / ISMG's id for this PDU when the protocol carries one
    (CMPP Msg_Id as decimal text): a redelivery repeats it.
    """

    protocol: str  # 'smpp' | 'cmpp'
    source: str
    destination: str
    coding: int
    payload: bytes
    received_at: datetime
    ref: int | None = None
    total: int | None = None
    seq: int | None = None
    smsc_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

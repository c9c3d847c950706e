"""Delivery receipts in SMPP: parse the de-facto receipt text, read the receipt TLVs, and
format receipts (for the simulator).

The text (SPEC34 Appendix B) is vendor specific, so parsing is tolerant: field names in any
case, ``submit date`` or ``submit_date``, missing or extra fields, 10- or 12-digit dates,
ids in hex or decimal. When the receipted_message_id / message_state / network_error_code
TLVs are present they win over the text (PROTOCOLS.md §1.13).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus

RECEIPT_TYPES = (0x04, 0x20)  # SMSC delivery receipt, intermediate delivery notification

MESSAGE_STATES: dict[int, ReceiptStatus] = {
    1: ReceiptStatus.ENROUTE,
    2: ReceiptStatus.DELIVERED,
    3: ReceiptStatus.EXPIRED,
    4: ReceiptStatus.DELETED,
    5: ReceiptStatus.UNDELIVERABLE,
    6: ReceiptStatus.ACCEPTED,
    7: ReceiptStatus.UNKNOWN,
    8: ReceiptStatus.REJECTED,
}
STATE_OF: dict[ReceiptStatus, int] = {status: state for state, status in MESSAGE_STATES.items()}
_STATUS_ALIASES = {"DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "ACCEPTED": "ACCEPTD",
                   "REJECTED": "REJECTD", "FAILED": "UNDELIV"}  # fmt: skip

IdFormat = Literal["as-is", "dec-to-hex", "hex-to-dec"]


@dataclass(frozen=True, slots=True)
class ReceiptText:
    """The fields found in a receipt text; absent ones are None."""

    message_id: str | None
    submitted: str | None
    delivered: str | None
    submit_date: datetime | None
    done_date: datetime | None
    stat: str | None
    err: str | None
    text: str | None


def is_receipt(esm_class: int) -> bool:
    """True when a deliver_sm / data_sm with this esm_class carries a receipt."""
    return (esm_class & 0x3C) in RECEIPT_TYPES


def parse_text(text: str) -> ReceiptText:
    """Parse ``id:... sub:... stat:... err:... text:...`` (never raises).

    Hand-rolled with str.find rather than a regex: receipts arrive at submit rates. A key
    counts only at the start or after whitespace; ``text:`` runs to the end, so keys inside
    the quoted message text are not mistaken for fields.
    """
    canonical = _CANONICAL.match(text)
    if canonical is not None:  # the Appendix B layout: one regex match
        message_id, sub, dlvrd, submitted, done, stat, err, body = canonical.groups()
        return ReceiptText(message_id or None, sub, dlvrd, parse_date(submitted), parse_date(done),
                           stat, err, None if body is None else body.strip())  # fmt: skip
    return parse_text_tolerant(text)


def parse_text_tolerant(text: str) -> ReceiptText:
    """The slow, forgiving parser behind :func:`parse_text` (any order, case, omissions)."""
    low = text.lower()
    end = len(text)
    text_at = _find_key(low, "text:", 0, end)
    limit = end if text_at < 0 else text_at
    found: list[tuple[int, str, int]] = []
    for name, tokens in _KEYS:
        for token in tokens:
            at = _find_key(low, token, 0, limit)
            if at >= 0:
                found.append((at, name, at + len(token)))
                break
    if text_at >= 0:
        found.append((text_at, "text", text_at + 5))
    found.sort()
    fields: dict[str, str] = {}
    for index, (_, name, value_at) in enumerate(found):
        stop = found[index + 1][0] if index + 1 < len(found) else end
        fields[name] = text[value_at:stop].strip()
    return ReceiptText(
        message_id=fields.get("id") or None,
        submitted=fields.get("sub"),
        delivered=fields.get("dlvrd"),
        submit_date=parse_date(fields.get("submit date")),
        done_date=parse_date(fields.get("done date")),
        stat=fields.get("stat"),
        err=fields.get("err"),
        text=fields.get("text"),
    )


_CANONICAL = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\d*) done date:(\d*) stat:(\S*) err:(\S*)(?: text:(.*))?\Z",
    re.IGNORECASE | re.DOTALL,
)
_KEYS = (
    ("id", ("id:",)),
    ("sub", ("sub:",)),
    ("dlvrd", ("dlvrd:",)),
    ("submit date", ("submit date:", "submit_date:")),
    ("done date", ("done date:", "done_date:")),
    ("stat", ("stat:",)),
    ("err", ("err:",)),
)


def _find_key(low: str, token: str, start: int, limit: int) -> int:
    while True:
        at = low.find(token, start, limit)
        if at <= 0 or low[at - 1].isspace():
            return at
        start = at + 1


def parse_date(value: str | None) -> datetime | None:
    """``YYMMDDhhmm`` or ``YYMMDDhhmmss`` (SMSC local time) → naive datetime, else None.

    Years 38-99 are 1938-1999 and 00-37 are 2000-2037 (SPEC34 Appendix C). Parsed by hand
    (strptime costs more than the rest of a receipt) and memoised: the receipts of one
    minute share their dates.
    """
    return _parse_date(value) if value else None


@functools.lru_cache(maxsize=1024)
def _parse_date(value: str) -> datetime | None:
    digits = value.strip()
    if len(digits) not in (10, 12) or not digits.isdigit():
        return None
    year = int(digits[0:2])
    try:
        return datetime(
            year + (1900 if year >= 38 else 2000),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]) if len(digits) == 12 else 0,
        )
    except ValueError:
        return None


def parse_status(stat: str | None) -> ReceiptStatus:
    if not stat:
        return ReceiptStatus.UNKNOWN
    word = stat.strip().upper()
    word = _STATUS_ALIASES.get(word, word)
    try:
        return ReceiptStatus(word)
    except ValueError:
        return ReceiptStatus.UNKNOWN


def convert_id(message_id: str, id_format: IdFormat) -> str:
    """Bring a receipt id to the form submit_sm_resp used (Kannel's smpp_msg_id_type)."""
    try:
        if id_format == "dec-to-hex":
            return format(int(message_id, 10), "x")
        if id_format == "hex-to-dec":
            return str(int(message_id, 16))
    except ValueError:
        pass
    return message_id


def from_deliver(pdu: Any, *, received_at: datetime, id_format: IdFormat = "as-is") -> DeliveryReceipt:
    """Build a :class:`DeliveryReceipt` from a receipt deliver_sm / data_sm, TLVs first."""
    tlvs = pdu.tlvs
    body = getattr(pdu, "short_message", b"") or tlvs.get("message_payload", b"")
    raw = bytes(body).decode("latin-1")
    parsed = parse_text(raw)
    message_id = tlvs.get("receipted_message_id")
    if not message_id:
        message_id = convert_id(parsed.message_id or "", id_format)
    state = tlvs.get("message_state")
    status = MESSAGE_STATES.get(state) if isinstance(state, int) else None
    if status is None:
        status = parse_status(parsed.stat)
    error_code = parsed.err
    network_error = tlvs.get("network_error_code")
    if isinstance(network_error, bytes) and len(network_error) == 3:
        error_code = f"{int.from_bytes(network_error[1:], 'big'):03d}"
    return DeliveryReceipt(
        message_id=str(message_id),
        status=status,
        error_code=error_code,
        submit_date=parsed.submit_date,
        done_date=parsed.done_date,
        destination=pdu.source_addr or None,
        raw=raw,
        received_at=received_at,
    )


def format_text(
    *,
    message_id: str,
    status: ReceiptStatus,
    submit_date: datetime,
    done_date: datetime,
    error: int = 0,
    text: str = "",
) -> str:
    """The Appendix B receipt text, as the simulator sends it."""
    delivered = 1 if status is ReceiptStatus.DELIVERED else 0
    submitted = f"{submit_date:%y%m%d%H%M}"
    done = submitted if done_date == submit_date else f"{done_date:%y%m%d%H%M}"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered:03d} "
        f"submit date:{submitted} done date:{done} "
        f"stat:{status.value} err:{error:03d} text:{text[:20]}"
    )


def tlvs_for(*, message_id: str, status: ReceiptStatus, error: int = 0) -> dict[str | int, Any]:
    """The receipt TLVs matching :func:`format_text` (network type 3 = GSM)."""
    return {
        "receipted_message_id": message_id,
        "message_state": STATE_OF[status],
        "network_error_code": bytes((3,)) + error.to_bytes(2, "big"),
    }

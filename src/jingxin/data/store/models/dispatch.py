"""Tables of dispatch beside ``messages``: parts on the wire, stray receipts, failing numbers.

* :class:`MessagePart` - one row per part submitted, keyed by the SMSC's id for that part,
  so a receipt finds its message *and* its part (long messages are tracked part by part).
* :class:`UnmatchedReceipt` - a receipt whose SMSC id is not (yet) known: kept, never
  dropped, and matched later when the submit response is recorded.
* :class:`NumberFailure` - permanent-failure receipts counted per number; past a threshold
  the number is marked invalid in ``subscriber_state``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

PART_STATES = (
    "submitted",
    "delivered",
    "undeliverable",
    "expired",
    "rejected",
    "failed",
)


class MessagePart(Base):
    """One part of a message as submitted: its SMSC id and what its receipt said."""

    __tablename__ = "message_parts"
    __table_args__ = (
        UniqueConstraint("message_id", "part_no"),
        Index("ix_message_parts_smsc_id", "smsc_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id"))
    part_no: Mapped[int]  # 1-based, in submit order
    channel: Mapped[str] = mapped_column(String(64))
    smsc_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="submitted")
    error_code: Mapped[str | None] = mapped_column(String(32), default=None)
    submitted_at: Mapped[datetime] = mapped_column(default=utc_now)
    receipt_at: Mapped[datetime | None] = mapped_column(default=None)


class UnmatchedReceipt(Base):
    """A receipt for an SMSC id no part carries yet; reconciled (matched_at set) later."""

    __tablename__ = "unmatched_receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    smsc_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32), default=None)
    raw: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    matched_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    attempts: Mapped[int] = mapped_column(default=0)


class NumberFailure(Base):
    """Permanent failures of one number in a row; a delivery resets the count."""

    __tablename__ = "number_failures"

    msisdn: Mapped[str] = mapped_column(String(20), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_status: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(32), default=None)
    last_at: Mapped[datetime] = mapped_column(default=utc_now)

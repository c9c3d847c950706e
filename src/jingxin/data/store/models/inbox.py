"""Tables of the durable MO inbox (migration 0005).

* :class:`MoPartRow` (``mo_parts``) - one row per MO PDU received (SMPP deliver_sm that is
  no receipt, CMPP DELIVER with Registered_Delivery 0), raw payload and concatenation
  numbers as they came. It is committed BEFORE the PDU is acknowledged; ``dedup_key`` is
  unique, so a PDU the SMSC delivers again after a crash is stored once.
* :class:`MoMessage` (``mo_messages``) - one row per whole MO, written once every part is
  in (or the wait for missing parts expired: ``complete`` false), decoded to text; the
  parts then point at it through ``mo_id``. Handlers read these rows (``mo_outcomes``,
  migration 0006, records what they did).
* :class:`MoUnacked` (``mo_unacked``, migration 0014) - the parts without an SMSC id
  (SMPP) stored but not yet known to be acknowledged: the same PDU again while its part is
  here is a redelivery; once it is gone, a subscriber's repeat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now


class MoMessage(Base):
    """One whole mobile-originated message, ready for handlers."""

    __tablename__ = "mo_messages"
    __table_args__ = (Index("ix_mo_messages_msisdn_received_at", "msisdn", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))  # E.164 when it normalises, else as received
    service_number: Mapped[str] = mapped_column(String(21))  # destination as received
    text: Mapped[str] = mapped_column(Text)  # the payload as hex when undecodable
    coding: Mapped[int]
    parts: Mapped[int]
    parts_expected: Mapped[int]
    complete: Mapped[bool]
    undecodable: Mapped[bool]
    received_at: Mapped[datetime]  # of the first part
    stored_at: Mapped[datetime] = mapped_column(default=utc_now)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)


class MoPartRow(Base):
    """One MO PDU as received; ``mo_id`` is set when its message is assembled."""

    __tablename__ = "mo_parts"
    __table_args__ = (
        # A message's parts (the inbox view); only linked parts are looked up by message
        # (migration 0013). With the unlinked ones in it, PostgreSQL answered "mo_id IS NULL"
        # from this index, walking an entry for every long MO's part ever written (each
        # starts unlinked; the entries stay until a vacuum): 27 ms a flush after 27,000.
        Index("ix_mo_parts_mo_id", "mo_id", sqlite_where=text("mo_id IS NOT NULL"),
              postgresql_where=text("mo_id IS NOT NULL")),  # fmt: skip
        # The parts waiting for their siblings, by sender (reassembly probes a flush's
        # senders) and age (the sweep's expiry).
        Index("ix_mo_parts_waiting", "source", "received_at", sqlite_where=text("mo_id IS NULL"),
              postgresql_where=text("mo_id IS NULL")),  # fmt: skip
        # (no index on fingerprint since migration 0014: the duplicate probe reads mo_unacked)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(8))  # 'smpp' | 'cmpp': how to read coding
    source: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(32))
    ref: Mapped[int | None] = mapped_column(default=None)  # concat reference; None: single
    total: Mapped[int] = mapped_column(default=1)
    seq: Mapped[int] = mapped_column(default=1)
    coding: Mapped[int]
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    smsc_id: Mapped[str | None] = mapped_column(String(64), default=None)
    fingerprint: Mapped[str] = mapped_column(String(40))  # sha1 of what identifies the PDU
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    mo_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("mo_messages.id"), default=None)


class MoUnacked(Base):
    """A stored MO part without an SMSC id whose acknowledgement is not yet recorded (the
    worker deletes the row once a deliver_sm_resp for the same PDU was written)."""

    __tablename__ = "mo_unacked"

    fingerprint: Mapped[str] = mapped_column(String(40), primary_key=True)  # mo_parts.fingerprint
    part_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    received_at: Mapped[datetime]

"""What the MO handlers made of each inbound message: one ``mo_outcomes`` row per MO.

A row exists once a handler has run for the MO (or none matched): ``handled``,
``no_handler`` or ``failed`` (with the error in ``detail``). An MO without a row is still
pending, which is how :func:`jingxin.dispatch.handlers.run_pending` finds its work; the
unique ``mo_id`` keeps two runners from recording one MO twice. The attribution columns
copy what the MO was a reply to (the last message sent to that number from that service
number within the window), so reports need no join back to the outbox.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

MO_OUTCOMES = ("handled", "no_handler", "failed")


class MoOutcome(Base):
    """The outcome of handling one MO, and what it was attributed to."""

    __tablename__ = "mo_outcomes"
    # A tenant's replies by day (the dashboard) and its inbox (migration 0012).
    __table_args__ = (Index("ix_mo_outcomes_tenant_handled", "tenant_id", "handled_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mo_id: Mapped[int] = mapped_column(BigId, ForeignKey("mo_messages.id"), unique=True)
    handler: Mapped[str | None] = mapped_column(String(64), default=None)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    # The tenant the MO counted for: the attributed message's, else the operator's.
    tenant_id: Mapped[str | None] = mapped_column(String(64), default=None)
    message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    campaign_id: Mapped[int | None] = mapped_column(default=None)
    source: Mapped[str | None] = mapped_column(String(16), default=None)
    source_id: Mapped[str | None] = mapped_column(String(64), default=None)
    arm: Mapped[str | None] = mapped_column(String(32), default=None)
    reply_message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    handled_at: Mapped[datetime] = mapped_column(default=utc_now)

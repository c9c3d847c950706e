"""What was decided and who did what: the policy decision log and the staff audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

# "cancel": a queued message stopped at claim by a refusal recorded after its decision.
OUTCOMES = ("send", "defer", "reject", "cancel")


class DecisionRecord(Base):
    """One policy decision about one candidate; written in bulk, never updated."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_msisdn_decided_at", "msisdn", "decided_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))  # a domain.candidate.Source value
    category: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(8))
    send_at: Mapped[datetime | None] = mapped_column(default=None)
    reasons: Mapped[str] = mapped_column(Text, default="")  # comma-joined reason codes
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    decided_at: Mapped[datetime] = mapped_column(default=utc_now)


class AuditEntry(Base):
    """One staff action (approve a template, start a campaign, blacklist a number)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object_type_object_id", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[str | None] = mapped_column(String(64), default=None)  # whose action
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utc_now, index=True)

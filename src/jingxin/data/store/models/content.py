"""What is sent: versioned templates under review, and campaigns that use them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, utc_now

CATEGORIES = ("otp", "notification", "marketing")
TEMPLATE_STATUSES = ("draft", "submitted", "approved", "rejected", "archived")
CAMPAIGN_STATUSES = ("draft", "testing", "running", "paused", "cancelled", "finished")
# How strict each category's rules are: a template approved for one category may be sent
# under it or a stricter one, never a laxer one (a marketing text sent as a notification
# would skip the opt-out, quiet hours and the unsubscribe route).
STRICTNESS = {"otp": 0, "notification": 1, "marketing": 2}


class Template(Base):
    """One version of a tenant's template; only an approved version may be sent."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("tenant_id", "code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)
    category: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name -> type
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reviewer: Mapped[str | None] = mapped_column(String(100), default=None)
    review_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class Campaign(Base):
    """A one-off send to an audience: the spec says who, the template says what."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id"), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Migration 0004: sha256 of (name, template, audience file content): a spec that
    # already ran is refused unless asked to run again.
    fingerprint: Mapped[str | None] = mapped_column(String(64), default=None, index=True)

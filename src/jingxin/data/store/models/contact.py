"""Who may be contacted: consent evidence, opt-outs, blacklist, subscriber state, ledger."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

CONSENT_CATEGORIES = ("marketing", "notification")
CONSENT_CHANNELS = ("sms", "app", "hall", "web", "api", "paper")
OPT_OUT_SOURCES = ("sms_reply", "hotline", "api", "console", "import")


class Consent(Base):
    """A subscriber's consent to one tenant for one category, with the wording as evidence."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_tenant_id_msisdn", "tenant_id", "msisdn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id"))
    msisdn: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    wording: Mapped[str] = mapped_column(Text)
    given_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class OptOut(Base):
    """An unsubscribe. NULL tenant: from everyone; NULL category: from all marketing."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20), index=True)
    # No foreign key: an opt-out must be recorded even if it names a tenant we lost.
    tenant_id: Mapped[str | None] = mapped_column(String(64), default=None)
    category: Mapped[str | None] = mapped_column(String(16), default=None)
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(default=utc_now)
    note: Mapped[str | None] = mapped_column(Text, default=None)


class BlacklistEntry(Base):
    """A number nobody (NULL tenant) or one tenant must ever message, whatever the category."""

    __tablename__ = "blacklist"
    __table_args__ = (
        UniqueConstraint("msisdn", "tenant_id"),
        # NULLs are distinct in a unique constraint: guard the global entry separately.
        Index(
            "uq_blacklist_msisdn_global",
            "msisdn",
            unique=True,
            sqlite_where=text("tenant_id IS NULL"),
            postgresql_where=text("tenant_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(default=utc_now)


class SubscriberState(Base):
    """What the network knows about a number that policy must respect."""

    __tablename__ = "subscriber_state"

    msisdn: Mapped[str] = mapped_column(String(20), primary_key=True)
    in_service: Mapped[bool] = mapped_column(default=True)
    complaint_sensitive: Mapped[bool] = mapped_column(default=False)
    last_complaint_at: Mapped[datetime | None] = mapped_column(default=None)
    roaming_country: Mapped[str | None] = mapped_column(String(2), default=None)  # ISO 3166-1
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    invalid_since: Mapped[datetime | None] = mapped_column(default=None)
    invalid_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class LedgerEntry(Base):
    """One contact actually made, for frequency caps and de-duplication."""

    __tablename__ = "contact_ledger"
    __table_args__ = (Index("ix_contact_ledger_msisdn_contact_at", "msisdn", "contact_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int | None] = mapped_column(default=None)
    contact_at: Mapped[datetime] = mapped_column(default=utc_now)
    # The day in the subscriber's own calendar: daily caps count local days, not UTC days.
    local_date: Mapped[date]
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)

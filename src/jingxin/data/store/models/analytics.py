"""Tables of analytics: short-link clicks, the event log, experiment assignments.

* :class:`LinkClick` - one request on a short link's redirect (``jingxin serve``), kept
  whole (bots too, flagged), so unique clickers and first-click times are queries.
* :class:`AnalyticsEvent` - the event log: sent, delivered, failed, clicked, replied,
  ordered, opted_out, complained, held_out - each tied to message, source (campaign /
  journey / fence ...), arm and subscriber; ``event_key`` makes appending idempotent.
* :class:`ExperimentAssignment` - who was put in which arm (hold-out included) of which
  experiment, chosen before policy, so arms are compared on who was *assigned*.
* :class:`EventMark` - how far the event collector has read each source table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now

EVENT_KINDS = ("sent", "delivered", "failed", "clicked", "replied", "ordered", "opted_out",
               "complained", "held_out")  # fmt: skip


class LinkClick(Base):
    """A request on ``https://<domain>/<token>``; ``bot`` marks previews and HEAD requests."""

    __tablename__ = "link_clicks"
    __table_args__ = (Index("ix_link_clicks_token_at", "token", "at"),
                      Index("ix_link_clicks_at", "at"))  # a day's clicks (migration 0012)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[int | None] = mapped_column(BigId, default=None, index=True)
    at: Mapped[datetime] = mapped_column(default=utc_now)
    bot: Mapped[bool] = mapped_column(default=False)
    method: Mapped[str] = mapped_column(String(8), default="GET")
    agent: Mapped[str | None] = mapped_column(String(200), default=None)
    client: Mapped[str | None] = mapped_column(String(32), default=None)  # hashed address


class AnalyticsEvent(Base):
    """One thing that happened to one message or subscriber, once (``event_key``)."""

    __tablename__ = "analytics_events"
    __table_args__ = (
        Index("ix_analytics_events_source", "source", "source_id", "kind"),
        Index("ix_analytics_events_msisdn_at", "msisdn", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # EVENT_KINDS
    at: Mapped[datetime]
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigId, default=None, index=True)
    source: Mapped[str | None] = mapped_column(String(16), default=None)
    source_id: Mapped[str | None] = mapped_column(String(64), default=None)
    campaign_id: Mapped[int | None] = mapped_column(default=None)
    arm: Mapped[str | None] = mapped_column(String(32), default=None)
    value: Mapped[float | None] = mapped_column(Float, default=None)  # e.g. order fee, yuan
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    recorded_at: Mapped[datetime] = mapped_column(default=utc_now)


class ExperimentAssignment(Base):
    """``msisdn`` was assigned ``arm`` of ``experiment`` (``<source>:<source id>``)."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (
        UniqueConstraint("experiment", "msisdn"),
        Index("ix_experiment_assignments_msisdn", "msisdn"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment: Mapped[str] = mapped_column(String(96))
    msisdn: Mapped[str] = mapped_column(String(20))
    arm: Mapped[str] = mapped_column(String(32))
    holdout: Mapped[bool] = mapped_column(default=False)
    tenant_id: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(default=utc_now)


class EventMark(Base):
    """The collector's watermark for one source table (last id read)."""

    __tablename__ = "event_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigId, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

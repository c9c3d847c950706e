"""The outbox: one row per logical message, and the delivery receipts that come back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, JsonDoc, utc_now
from jingxin.domain.candidate import Source

MESSAGE_STATES = (
    "queued",
    "submitting",
    "submitted",
    "delivered",
    "undeliverable",
    "expired",
    "rejected",
    "failed",
)
# Lower lane, higher priority: an OTP never waits behind a campaign.
LANES = {"otp": 0, "notification": 1, "marketing": 2}
# The way back's answers to a subscriber who has just texted (the hall's replies, the
# inbox's confirmations and auto-replies) have a lane of their own, whatever their
# category (which still decides their policy): a person waits for them as for an OTP. In
# the notification lane they queued behind a campaign's backlog and, while MO flowed,
# behind the worker's yielding to the way back itself: at 1,000 hall MO/s a reply was
# enqueued in 36 ms and submitted 12.5 s later; an unsubscribe confirmation during a
# 40,000-notification campaign, 40.8 s later (BENCHMARKS.md, "The way back, a sixth time").
REPLY_SOURCES = ("hall", "inbox")
REPLY_LANE = 3
LANE_NUMBERS = {**LANES, "reply": REPLY_LANE}  # every lane by name (--lanes, stats)
LANE_NAMES = {number: name for name, number in LANE_NUMBERS.items()}
# The order workers claim in: OTPs, then replies, then notifications, then marketing.
CLAIM_ORDER = (LANES["otp"], REPLY_LANE, LANES["notification"], LANES["marketing"])
# Lanes a worker does not hold back: they may claim its reserved slots, and while MO wait
# to be stored or handled they keep claiming in full (the other lanes yield).
URGENT_LANES = frozenset({LANES["otp"], REPLY_LANE})


def lane_of(category: str, source: str | None) -> int:
    """The lane of a message of ``category`` from ``source`` (:data:`REPLY_SOURCES`: the
    reply lane)."""
    return REPLY_LANE if source in REPLY_SOURCES else LANES[category]

# Who may ask the delivery entry for a message (messages.source).
SOURCES = tuple(source.value for source in Source)  # one list: the domain's


class Message(Base):
    """A message from queued to a final state; ``idempotency_key`` makes enqueueing safe."""

    __tablename__ = "messages"
    __table_args__ = (
        # The claim's order, one index range scan per lane (migration 0003).
        Index("ix_messages_queue", "state", "lane", "scheduled_at", "id"),
        # A click finds its message by token (migration 0011); NULLs do not collide.
        Index("ix_messages_link_token", "link_token", unique=True),
        # A tenant's day on the dashboard: sent, and finished (migration 0012).
        Index("ix_messages_tenant_submitted", "tenant_id", "submitted_at"),
        Index("ix_messages_tenant_finished", "tenant_id", "finished_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(default=None, index=True)
    msisdn: Mapped[str] = mapped_column(String(20), index=True)
    category: Mapped[str] = mapped_column(String(16))
    lane: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    parts: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str | None] = mapped_column(String(64), default=None)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    scheduled_at: Mapped[datetime] = mapped_column(default=utc_now)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    error_code: Mapped[str | None] = mapped_column(String(32), default=None)
    # Money as float: SQLite has no decimal type and tariffs carry at most 4 decimals.
    cost: Mapped[float | None] = mapped_column(Float, default=None)
    # SMSC ids, one per part, in part order.
    smsc_ids: Mapped[list[str] | None] = mapped_column(JsonDoc, default=None)
    # Added by migration 0002 (dispatch): attempts, validity, one timestamp per state.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    unresolved: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(64), default=None)
    submitting_at: Mapped[datetime | None] = mapped_column(default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error_detail: Mapped[str | None] = mapped_column(Text, default=None)
    # Added by migration 0004 (delivery): who asked for it, from which number, which arm.
    source: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    source_id: Mapped[str | None] = mapped_column(String(64), default=None)
    sender: Mapped[str | None] = mapped_column(String(21), default=None)
    arm: Mapped[str | None] = mapped_column(String(32), default=None)
    # Added by migration 0011 (analytics): the short link in the text, if any. The token is
    # derived from the idempotency key (analytics.links), never from the subscriber.
    link_token: Mapped[str | None] = mapped_column(String(16), default=None)
    link_url: Mapped[str | None] = mapped_column(Text, default=None)  # where it redirects


class Receipt(Base):
    """A delivery receipt as the SMSC sent it; matched to a message by its SMSC id."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # NULL until matched: receipts can arrive before the submit response is recorded.
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id"), default=None, index=True
    )
    smsc_message_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    raw: Mapped[str] = mapped_column(Text, default="")

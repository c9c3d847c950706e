"""Tables of the SMS business hall, its BOSS stand-in and the dial tests (migration 0008).

Money is kept in fen (integer hundredths of a yuan): sums and discounts stay exact.

The hall (``jingxin.hall``):

* :class:`HallSession` - one per (number, service number): where the subscriber is in the
  menu and what waits for their ``Y`` (a pending order, a survey), until ``expires_at``.
* :class:`HallInteraction` - one per MO the hall answered: which command, which zone, what
  came of it. The hall report reads these.
* :class:`HallOrder` - an order placed through the hall: the product, the price rule it was
  sold under (zone 42: ``discount_pct`` off for ``discounted_months``, then list price),
  the staff code, the referral it converts, and its state. ``request_key`` is unique and is
  what the BOSS knows the order by, so an order whose BOSS call timed out (``unknown``) is
  reconciled by asking the BOSS for that key, never placed again.
* :class:`HallReferral` - ``<friend>CL``: once per (referrer, friend) pair.
* :class:`PointsEntry` - the points ledger; ``key`` is unique, so no grant is booked twice.
* :class:`Voucher`, :class:`Merchant` - electronic vouchers with a unique code, bound to a
  merchant, redeemed once before they expire.
* :class:`HallStaff` - staff and agents by code and branch (the incentive leaderboard).
* :class:`HallFeedback` - survey and NPS answers; :class:`HallComplaint` - complaints.

The BOSS stand-in (``jingxin.hall.boss.StoreBoss``; a real operator plugs in their own):

* :class:`BossAccount` - balance, plan and this month's usage of a number.
* :class:`BossProduct` - the catalogue the hall sells: fee, zone, electronic-only, the
  mutually exclusive group, eligibility.
* :class:`BossHolding` - what a number holds; :class:`BossOrder` - the BOSS's own order
  book, keyed by the hall's ``request_key``.

Dial tests (``jingxin.probes``): :class:`ProbeRun` - one row per probe per run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, utc_now
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID

ORDER_STATES = ("submitting", "placed", "failed", "unknown", "cancelled")
ORDER_REASONS = ("insufficient_balance", "mutually_exclusive", "not_eligible",
                 "confirmation_expired", "unknown_product", "already_held",
                 "boss_timeout", "boss_error")  # fmt: skip
REFERRAL_STATES = ("offered", "converted")
FEEDBACK_KINDS = ("nps", "survey", "suggestion")


# ----------------------------------------------------------------------------- hall


class HallSession(Base):
    """Where a subscriber is in the hall's menu and what waits for their confirmation."""

    __tablename__ = "hall_sessions"
    __table_args__ = (UniqueConstraint("msisdn", "service_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    service_number: Mapped[str] = mapped_column(String(21))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    menu: Mapped[str | None] = mapped_column(String(32), default=None)  # e.g. "42"
    pending_kind: Mapped[str | None] = mapped_column(String(32), default=None)  # "order", "survey"
    pending: Mapped[str | None] = mapped_column(Text, default=None)  # JSON of what waits
    pending_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime]  # the whole session (menu position) ends here
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class HallInteraction(Base):
    """One MO the hall answered: the command it was read as and what came of it."""

    __tablename__ = "hall_interactions"
    __table_args__ = (Index("ix_hall_interactions_msisdn_at", "msisdn", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mo_id: Mapped[int] = mapped_column(BigId, unique=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    service_number: Mapped[str] = mapped_column(String(21))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    command: Mapped[str] = mapped_column(String(32), index=True)  # "menu", "zone", "balance", ...
    zone: Mapped[str | None] = mapped_column(String(8), default=None)  # "41" | "42" | "43"
    kind: Mapped[str] = mapped_column(String(16))  # "query" | "order" | "other"
    outcome: Mapped[str] = mapped_column(String(32))  # "answered", "placed", "failed:<reason>", ...
    reply: Mapped[str | None] = mapped_column(Text, default=None)  # a re-run answers the same
    at: Mapped[datetime] = mapped_column(index=True)


class HallOrder(Base):
    """An order through the hall, with the price rule it was sold under."""

    __tablename__ = "hall_orders"
    __table_args__ = (Index("ix_hall_orders_msisdn", "msisdn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_key: Mapped[str] = mapped_column(String(64), unique=True)  # what the BOSS knows
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    service_number: Mapped[str] = mapped_column(String(21))
    product_id: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str | None] = mapped_column(String(8), default=None)
    list_fee_fen: Mapped[int]
    price_fen: Mapped[int]  # what the first month costs under the rule
    discount_pct: Mapped[int] = mapped_column(default=0)
    discounted_months: Mapped[int] = mapped_column(default=0)
    trial_days: Mapped[int] = mapped_column(default=0)
    staff_code: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    referral_id: Mapped[int | None] = mapped_column(BigId, default=None)
    state: Mapped[str] = mapped_column(String(16), index=True)  # ORDER_STATES
    reason: Mapped[str | None] = mapped_column(String(32), default=None)  # ORDER_REASONS
    boss_ref: Mapped[str | None] = mapped_column(String(64), default=None)
    mo_id: Mapped[int | None] = mapped_column(BigId, default=None)  # the confirming MO
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class HallReferral(Base):
    """``<friend>CL``: a referrer recommends a product to a friend, once per pair."""

    __tablename__ = "hall_referrals"
    __table_args__ = (UniqueConstraint("referrer", "friend"),
                      Index("ix_hall_referrals_friend", "friend"))  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    referrer: Mapped[str] = mapped_column(String(20))
    friend: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    product_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # REFERRAL_STATES
    offer_message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    order_id: Mapped[int | None] = mapped_column(BigId, default=None)
    staff_code: Mapped[str | None] = mapped_column(String(32), default=None)
    mo_id: Mapped[int | None] = mapped_column(BigId, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    converted_at: Mapped[datetime | None] = mapped_column(default=None)


class PointsEntry(Base):
    """One booking in a number's points account; ``key`` makes each grant happen once."""

    __tablename__ = "hall_points"
    __table_args__ = (Index("ix_hall_points_msisdn", "msisdn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(96), unique=True)  # e.g. "referral:17"
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    delta: Mapped[int]  # + earned, - redeemed
    reason: Mapped[str] = mapped_column(String(32))  # "referral", "redeem", "order", ...
    staff_code: Mapped[str | None] = mapped_column(String(32), default=None)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class Merchant(Base):
    """A merchant that redeems vouchers, texting from its registered number."""

    __tablename__ = "hall_merchants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # merchant code
    name: Mapped[str] = mapped_column(String(128))
    msisdn: Mapped[str] = mapped_column(String(20), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    active: Mapped[bool] = mapped_column(default=True)


class Voucher(Base):
    """An electronic voucher: a unique code, for one number, redeemable once at one merchant."""

    __tablename__ = "hall_vouchers"
    __table_args__ = (Index("ix_hall_vouchers_msisdn", "msisdn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    issue_key: Mapped[str] = mapped_column(String(96), unique=True)  # no voucher issued twice
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    merchant_id: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(128))
    value_fen: Mapped[int]
    points_cost: Mapped[int] = mapped_column(default=0)
    issued_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None] = mapped_column(default=None)
    redeemed_by: Mapped[str | None] = mapped_column(String(32), default=None)  # merchant id


class HallStaff(Base):
    """A member of staff or an agent whose code customers quote when they order."""

    __tablename__ = "hall_staff"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    active: Mapped[bool] = mapped_column(default=True)


class HallFeedback(Base):
    """A survey or NPS answer (score 0..10 for NPS) or a suggestion, one per MO."""

    __tablename__ = "hall_feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mo_id: Mapped[int] = mapped_column(BigId, unique=True)
    msisdn: Mapped[str] = mapped_column(String(20), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    kind: Mapped[str] = mapped_column(String(16))  # FEEDBACK_KINDS
    survey: Mapped[str | None] = mapped_column(String(32), default=None)
    score: Mapped[int | None] = mapped_column(default=None)
    text: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utc_now)


class HallComplaint(Base):
    """A complaint received through the hall; it also marks the number complaint-sensitive."""

    __tablename__ = "hall_complaints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mo_id: Mapped[int] = mapped_column(BigId, unique=True)
    msisdn: Mapped[str] = mapped_column(String(20), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    category: Mapped[str] = mapped_column(String(32))  # "marketing_sms", "billing", ...
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    at: Mapped[datetime] = mapped_column(default=utc_now)


# ----------------------------------------------------------------------------- BOSS


class BossAccount(Base):
    """A number's account in the BOSS stand-in: balance, plan and this month's usage."""

    __tablename__ = "boss_accounts"

    msisdn: Mapped[str] = mapped_column(String(20), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(32))
    plan_name: Mapped[str] = mapped_column(String(64), default="")
    payment: Mapped[str] = mapped_column(String(16), default="prepaid")
    status: Mapped[str] = mapped_column(String(16), default="active")
    star_level: Mapped[int] = mapped_column(default=0)
    balance_fen: Mapped[int] = mapped_column(default=0)
    data_quota_mb: Mapped[int] = mapped_column(default=0)
    data_used_mb: Mapped[int] = mapped_column(default=0)
    voice_quota_min: Mapped[int] = mapped_column(default=0)
    voice_used_min: Mapped[int] = mapped_column(default=0)
    sms_quota: Mapped[int] = mapped_column(default=0)
    sms_used: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class BossProduct(Base):
    """A product the BOSS sells; ``zone`` puts it in the hall's 41 (trial) or 42 (deals)."""

    __tablename__ = "boss_products"

    product_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32), default="other")
    monthly_fee_fen: Mapped[int]
    zone: Mapped[str | None] = mapped_column(String(8), default=None)
    trial_days: Mapped[int] = mapped_column(default=0)
    electronic_only: Mapped[bool] = mapped_column(default=False)  # only via SMS hall / app
    exclusive_group: Mapped[str | None] = mapped_column(String(32), default=None)
    min_star_level: Mapped[int] = mapped_column(default=0)
    payment: Mapped[str | None] = mapped_column(String(16), default=None)  # None: any
    rank: Mapped[int] = mapped_column(default=0)  # order in the zone's list
    active: Mapped[bool] = mapped_column(default=True)


class BossHolding(Base):
    """A product a number holds (from an order, or loaded from the operator's systems)."""

    __tablename__ = "boss_holdings"
    __table_args__ = (UniqueConstraint("msisdn", "product_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[str] = mapped_column(String(32))
    boss_ref: Mapped[str | None] = mapped_column(String(64), default=None)
    since: Mapped[datetime] = mapped_column(default=utc_now)


class BossOrder(Base):
    """The BOSS's own order book: one row per ``request_key`` it was asked to place."""

    __tablename__ = "boss_orders"

    boss_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_key: Mapped[str] = mapped_column(String(64), unique=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default="sms_hall")
    fee_fen: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))  # "placed" | "refused" | "cancelled"
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    at: Mapped[datetime] = mapped_column(default=utc_now)


# ----------------------------------------------------------------------------- probes


class ProbeRun(Base):
    """One dial test: an MO sent as a subscriber would, and the reply that came (or not)."""

    __tablename__ = "probe_runs"
    __table_args__ = (Index("ix_probe_runs_probe_started", "probe", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True)  # one `probe run` invocation
    probe: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))
    service_number: Mapped[str] = mapped_column(String(21))
    sent_text: Mapped[str] = mapped_column(Text)
    expect: Mapped[str] = mapped_column(Text)  # the regular expression
    max_latency_ms: Mapped[int]
    reply_text: Mapped[str | None] = mapped_column(Text, default=None)
    latency_ms: Mapped[float | None] = mapped_column(default=None)
    ok: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # why it failed
    started_at: Mapped[datetime] = mapped_column(default=utc_now)

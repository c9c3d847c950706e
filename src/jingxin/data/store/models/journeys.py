"""Tables of journeys, retention work orders and the scheduler (migration 0009).

Journeys (``jingxin.journeys``):

* :class:`JourneyRun` - one per (trigger, day) of the daily scan: what it found and what
  the delivery entry made of it. ``done`` means the day's candidates were all handed over;
  a run cut off half-way is ``running`` and is finished by the next run of that day (the
  delivery entry's idempotency keys make that safe), never sent twice.
* :class:`GiftClaim` - a gift claimed by SMS (``LB`` after the anniversary message, ``SR``
  after the birthday one), once per number and gift and occasion; its follow-up message.
* :class:`JourneyEnrolment` - one subscriber in one multi-step journey (YAML): the step
  they are at, when it is due, whether they are in the hold-out group, and how it ended.
* :class:`JourneyEvent` - what happened to an enrolment (a step sent, a reply, an order,
  a claim, a wait that ran out, the exit); ``(enrolment_id, step, kind)`` is unique, so a
  step resumed after a crash records once.

Retention (``jingxin.retention``):

* :class:`WorkOrder` - a double-stop (双停) subscriber extracted for a branch to visit, with
  the churn propensity so the most savable are visited first; one per barring episode.
* :class:`WorkOrderEvent` - the work order's lifecycle (created, assigned, visited,
  reactivated, lost), who did it and when.

The scheduler: :class:`SchedulerLock` - a lease in the store, so two schedulers on two
machines do not both run.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingxin.data.store.models.base import Base, BigId, JsonDoc, utc_now
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID

RUN_STATES = ("running", "done", "failed")
ENROLMENT_STATES = ("active", "done", "exited")
WORK_ORDER_STATES = ("created", "assigned", "visited", "reactivated", "lost")


class JourneyRun(Base):
    """One trigger of the daily scan for one day."""

    __tablename__ = "journey_runs"
    __table_args__ = (UniqueConstraint("trigger", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(32))  # "birthday", "holiday", ...
    day: Mapped[date]  # the scan's date (the operator's time zone)
    state: Mapped[str] = mapped_column(String(16))  # RUN_STATES
    candidates: Mapped[int] = mapped_column(default=0)
    queued: Mapped[int] = mapped_column(default=0)
    deferred: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[dict] = mapped_column(JsonDoc, default=dict)  # reason -> subscribers
    detail: Mapped[str | None] = mapped_column(Text, default=None)  # a warning, the error
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class GiftClaim(Base):
    """A gift a subscriber claimed by SMS, and the follow-up it earned."""

    __tablename__ = "gift_claims"
    __table_args__ = (UniqueConstraint("msisdn", "gift", "occasion"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    gift: Mapped[str] = mapped_column(String(32))  # "anniversary", "birthday"
    occasion: Mapped[str] = mapped_column(String(32))  # e.g. the year: "2026"
    message_id: Mapped[int | None] = mapped_column(BigId, default=None)  # what offered it
    mo_id: Mapped[int] = mapped_column(BigId, unique=True)
    followup_message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    claimed_at: Mapped[datetime] = mapped_column(default=utc_now)


class JourneyEnrolment(Base):
    """One subscriber's way through one multi-step journey."""

    __tablename__ = "journey_enrolments"
    __table_args__ = (UniqueConstraint("journey", "msisdn", "entry_key"),
                      Index("ix_journey_enrolments_due", "state", "next_at"))  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(20))
    subscriber_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    entry_key: Mapped[str] = mapped_column(String(64))  # e.g. the entry day: one entry each
    holdout: Mapped[bool] = mapped_column(default=False)
    step: Mapped[str | None] = mapped_column(String(64), default=None)  # current step id
    state: Mapped[str] = mapped_column(String(16), default="active")  # ENROLMENT_STATES
    next_at: Mapped[datetime | None] = mapped_column(default=None)  # when the step is due
    outcome: Mapped[str | None] = mapped_column(String(64), default=None)  # how it ended
    context: Mapped[dict] = mapped_column(JsonDoc, default=dict)  # variables carried along
    entered_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class JourneyEvent(Base):
    """Something that happened to an enrolment; each (step, kind) once."""

    __tablename__ = "journey_events"
    __table_args__ = (UniqueConstraint("enrolment_id", "step", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(BigId, index=True)
    step: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # "sent", "replied", "ordered", "claimed", ...
    message_id: Mapped[int | None] = mapped_column(BigId, default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class WorkOrder(Base):
    """A double-stop subscriber for a branch to visit; one per barring episode."""

    __tablename__ = "work_orders"
    __table_args__ = (UniqueConstraint("kind", "subscriber_id", "episode"),
                      Index("ix_work_orders_branch_state", "branch", "state"))  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="double_stop")
    subscriber_id: Mapped[int] = mapped_column(BigInteger)  # the warehouse's int64
    msisdn: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT_ID)
    episode: Mapped[str] = mapped_column(String(32))  # e.g. the barring start date
    branch: Mapped[str] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[str] = mapped_column(String(16), default="created")  # WORK_ORDER_STATES
    assignee: Mapped[str | None] = mapped_column(String(64), default=None)
    propensity: Mapped[float | None] = mapped_column(default=None)  # churn score, 0..1
    barred_since: Mapped[date]
    extracted_on: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class WorkOrderEvent(Base):
    """One step of a work order's lifecycle."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, index=True)
    state: Mapped[str] = mapped_column(String(16))
    by: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class SchedulerLock(Base):
    """A lease: the scheduler holding ``name`` until ``expires_at`` (renewed while alive)."""

    __tablename__ = "scheduler_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]

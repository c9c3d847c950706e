"""Claiming due messages: lane by lane, in batches, safely shared by many workers.

A claim moves up to ``limit`` queued, due messages to ``submitting`` and returns them.
Lanes are tried in priority order (OTP, notification, marketing) with the remaining room,
each one an index range scan of ``(state, lane, scheduled_at)``, so an OTP queued behind a
million marketing messages is in the very next claim. On PostgreSQL the inner select is
``FOR UPDATE SKIP LOCKED``: any number of workers on any number of hosts claim disjoint
rows without waiting on each other. SQLite has one writer at a time, which makes the
same statement safe for the single worker it supports.

Messages of paused or cancelled campaigns are left where they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import LANES, Campaign, Message

HELD_CAMPAIGN_STATUSES = ("paused", "cancelled")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this worker now owns, with just what submitting it needs."""

    id: int
    msisdn: str
    text: str
    category: str
    lane: int
    parts: int
    channel: str | None
    attempts: int  # including this one
    expires_at: datetime | None
    idempotency_key: str
    campaign_id: int | None


_RETURNED = (
    Message.id, Message.msisdn, Message.text, Message.category, Message.lane, Message.parts,
    Message.channel, Message.attempts, Message.expires_at, Message.idempotency_key,
    Message.campaign_id,
)  # fmt: skip


def lanes_of(names: Sequence[str] | None) -> tuple[int, ...]:
    """Lane numbers for category names (None: every lane), highest priority first."""
    if not names:
        return tuple(sorted(LANES.values()))
    unknown = [n for n in names if n not in LANES]
    if unknown:
        from jingxin.errors import InputError

        raise InputError(
            f"unknown lane(s) {', '.join(unknown)}: use {', '.join(LANES)}"
        )
    return tuple(sorted(LANES[n] for n in names))


def claim(
    store: Store,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lanes: Sequence[int] = (0, 1, 2),
) -> list[Claimed]:
    """Claim up to ``limit`` due messages, higher-priority lanes first."""
    postgres = store.engine.dialect.name == "postgresql"
    held = select(Campaign.id).where(Campaign.status.in_(HELD_CAMPAIGN_STATUSES))
    out: list[Claimed] = []
    with (
        store_errors(f"claiming messages for worker {worker}"),
        store.engine.begin() as conn,
    ):
        for lane in lanes:
            room = limit - len(out)
            if room <= 0:
                break
            due = (
                select(Message.id)
                .where(Message.state == "queued", Message.lane == lane)
                .where(Message.scheduled_at <= now)
                .where(
                    or_(Message.campaign_id.is_(None), Message.campaign_id.not_in(held))
                )
                .order_by(Message.scheduled_at, Message.id)
                .limit(room)
            )
            if postgres:
                due = due.with_for_update(skip_locked=True)
            moved = conn.execute(
                update(Message)
                .where(Message.id.in_(due))
                .values(state="submitting", submitting_at=now, updated_at=now, worker=worker,
                        attempts=Message.attempts + 1)
                .returning(*_RETURNED)
            ).all()  # fmt: skip
            out.extend(sorted((Claimed(*row) for row in moved), key=lambda c: c.id))
    return out


def stale_submitting(
    store: Store, *, now: datetime, older_than: timedelta, worker: str | None = None
) -> list[tuple[int, str, datetime | None]]:
    """Messages stuck in ``submitting``: (id, category, expires_at).

    With ``worker``, every message that worker left behind (it restarted, so nothing of
    its own is in flight); otherwise those whose submit started before ``now - older_than``.
    """
    query = select(Message.id, Message.category, Message.expires_at).where(
        Message.state == "submitting"
    )
    if worker is not None:
        query = query.where(Message.worker == worker)
    else:
        query = query.where(Message.submitting_at < now - older_than)
    with store_errors("finding unresolved submits"), store.sessions() as session:
        return [tuple(row) for row in session.execute(query.limit(10_000))]

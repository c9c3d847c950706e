"""Claiming due messages: lane by lane, in batches, safely shared by many workers.

A claim moves up to ``limit`` queued, due messages to ``submitting`` and returns them.
Lanes are tried in priority order (OTP, notification, marketing) with the remaining room,
each one an index range scan of ``(state, lane, scheduled_at, id)``, so an OTP queued behind a
million marketing messages is in the very next claim. On PostgreSQL the inner select is
``FOR UPDATE SKIP LOCKED``: any number of workers on any number of hosts claim disjoint
rows without waiting on each other. SQLite has one writer at a time, which makes the
same statement safe for the single worker it supports.

Messages of paused or cancelled campaigns are left where they are.

In the same transaction, the claimed rows are re-checked against opt-outs, blacklist
entries and consent withdrawals recorded since they were decided
(:mod:`jingxin.dispatch.recheck`, one query per claim): those cancelled are final
(``rejected``) when the claim commits and never reach the worker.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import TextualSelect, or_, select, text, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (CLAIM_ORDER, LANE_NAMES, LANE_NUMBERS, URGENT_LANES,
                                      Campaign, Message)
from jingxin.dispatch.recheck import Refusal, cancel_refused

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
    sender: str | None = None  # the service number it goes out from (None: the channel's)
    source: str | None = None  # what asked for it (the unresolved rule may be per source)


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """One claim: the messages to submit, and those cancelled by the send-time re-check."""

    messages: list[Claimed]
    cancelled: list[Refusal]


_RETURNED = (
    Message.id, Message.msisdn, Message.text, Message.category, Message.lane, Message.parts,
    Message.channel, Message.attempts, Message.expires_at, Message.idempotency_key,
    Message.campaign_id, Message.sender, Message.source,
)  # fmt: skip


def lanes_of(names: Sequence[str] | None) -> tuple[int, ...]:
    """Lane numbers for lane names (None: every lane), in claim order: ``otp``, ``reply``
    (the way back's answers), ``notification``, ``marketing``."""
    if not names:
        return CLAIM_ORDER
    unknown = [n for n in names if n not in LANE_NUMBERS]
    if unknown:
        from jingxin.errors import InputError

        raise InputError(
            f"unknown lane(s) {', '.join(unknown)}: use "
            f"{', '.join(LANE_NAMES[lane] for lane in CLAIM_ORDER)}"
        )
    wanted = {LANE_NUMBERS[n] for n in names}
    return tuple(lane for lane in CLAIM_ORDER if lane in wanted)


def _reserved(rank: int, lane: int) -> bool:
    """Whether a lane's claim leaves the reserved slots alone: all but the first lane a
    worker claims and the urgent ones (OTPs, replies: ``URGENT_LANES``)."""
    return rank > 0 and lane not in URGENT_LANES


def claim(
    store: Store,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lanes: Sequence[int] = CLAIM_ORDER,
    reserve: int = 0,
) -> list[Claimed]:
    """Claim up to ``limit`` due messages, higher-priority lanes first (those the re-check
    cancelled left out: see :func:`claim_batch`).

    ``reserve``: room only the first lane may use - a worker full of marketing keeps a few
    slots for the next OTP instead of making it wait for a marketing submit to finish.
    """
    return claim_batch(store, worker=worker, limit=limit, now=now, lanes=lanes,
                       reserve=reserve).messages  # fmt: skip


def claim_batch(
    store: Store,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lanes: Sequence[int] = CLAIM_ORDER,
    reserve: int = 0,
    recheck: bool = True,
) -> ClaimBatch:
    """:func:`claim`, telling which claimed messages the send-time re-check cancelled
    (``recheck=False`` skips it: for benchmarks' baselines only)."""
    if store.engine.dialect.name == "postgresql":
        return _claim_pg(store, worker=worker, limit=limit, now=now, lanes=tuple(lanes),
                         reserve=reserve, recheck=recheck)  # fmt: skip
    held = select(Campaign.id).where(Campaign.status.in_(HELD_CAMPAIGN_STATUSES))
    out: list[Claimed] = []
    with (
        store_errors(f"claiming messages for worker {worker}"),
        store.engine.begin() as conn,
    ):
        for rank, lane in enumerate(lanes):
            room = limit - len(out) - (reserve if _reserved(rank, lane) else 0)
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
            moved = conn.execute(
                update(Message)
                .where(Message.id.in_(due))
                .values(state="submitting", submitting_at=now, updated_at=now, worker=worker,
                        attempts=Message.attempts + 1)
                .returning(*_RETURNED)
            ).all()  # fmt: skip
            out.extend(sorted((Claimed(*row) for row in moved), key=lambda c: c.id))
        cancelled = cancel_refused(conn, ids=[c.id for c in out], now=now) if recheck else []
    return _without(out, cancelled)


def _without(claimed: list[Claimed], cancelled: list[Refusal]) -> ClaimBatch:
    if not cancelled:
        return ClaimBatch(claimed, [])
    gone = {r.message.id for r in cancelled}
    return ClaimBatch([c for c in claimed if c.id not in gone], cancelled)


def _claim_pg(
    store: Store, *, worker: str, limit: int, now: datetime, lanes: tuple[int, ...],
    reserve: int, recheck: bool,
) -> ClaimBatch:  # fmt: skip
    """The same claim as one statement (one round trip, not one per lane): each lane's
    ``FOR UPDATE SKIP LOCKED`` select is limited to the room the lanes before it left.
    Ordered by ``(scheduled_at, id)``, which the ``(state, lane, scheduled_at, id)`` index
    yields as it is: without ``id`` in the index, PostgreSQL read and sorted every queued
    row of the lane on each claim (all of a million-message campaign); without ``id`` in
    the order, a message resent after a crash went behind the rest of its campaign.

    The update finds the claimed rows by ``id = ANY(ARRAY(...))``: an index probe per row.
    Joined to the lanes' union instead (``FROM (...) AS c WHERE m.id = c.id``), the planner
    could not know how many rows ``LIMIT GREATEST(...)`` lets through, guessed a tenth of
    the lane and hashed the whole table for every claim: 23-34 ms a claim at 54,000
    messages, and more as the table grew (BENCHMARKS.md, "The way back, an eighth time").
    """
    if not lanes:
        return ClaimBatch([], [])
    with (
        store_errors(f"claiming messages for worker {worker}"),
        store.engine.begin() as conn,
    ):
        rows = conn.execute(_pg_claim_statement(lanes), {
            "now": now, "worker": worker, "limit": limit, "reserve": reserve,
            "held": list(HELD_CAMPAIGN_STATUSES),
        }).all()  # fmt: skip
        ids = [row[0] for row in rows]
        cancelled = cancel_refused(conn, ids=ids, now=now) if recheck else []
    rank = {lane: i for i, lane in enumerate(lanes)}
    claimed = sorted((Claimed(*row) for row in rows), key=lambda c: (rank[c.lane], c.id))
    return _without(claimed, cancelled)


@functools.cache
def _pg_claim_statement(lanes: tuple[int, ...]) -> TextualSelect:
    ctes, taken = [], []
    for i, lane in enumerate(lanes):
        room = "CAST(:limit AS int)" + (" - CAST(:reserve AS int)" if _reserved(i, lane) else "")
        room += "".join(f" - (SELECT count(*) FROM l{j})" for j in range(i))
        ctes.append(
            f"l{i} AS (SELECT id FROM messages WHERE state = 'queued' AND lane = {int(lane)}"
            " AND scheduled_at <= :now AND (campaign_id IS NULL OR campaign_id NOT IN"
            " (SELECT id FROM campaigns WHERE status = ANY(CAST(:held AS text[]))))"
            f" ORDER BY scheduled_at, id LIMIT GREATEST(0, {room}) FOR UPDATE SKIP LOCKED)"
        )
        taken.append(f"SELECT id FROM l{i}")
    returned = ", ".join(f"m.{column.key}" for column in _RETURNED)
    return text(
        f"WITH {', '.join(ctes)} UPDATE messages AS m SET state = 'submitting',"
        " submitting_at = :now, updated_at = :now, worker = :worker,"
        f" attempts = m.attempts + 1 WHERE m.id = ANY(ARRAY({' UNION ALL '.join(taken)}))"
        f" RETURNING {returned}"
    ).columns(*_RETURNED)


def stale_submitting(
    store: Store, *, now: datetime, older_than: timedelta, worker: str | None = None
) -> list[tuple[int, str, datetime | None, datetime, str | None]]:
    """Messages stuck in ``submitting``: (id, category, expires_at, scheduled_at, source).

    With ``worker``, every message that worker left behind (it restarted, so nothing of
    its own is in flight); otherwise those whose submit started before ``now - older_than``.
    """
    query = select(
        Message.id, Message.category, Message.expires_at, Message.scheduled_at, Message.source
    ).where(Message.state == "submitting")
    if worker is not None:
        query = query.where(Message.worker == worker)
    else:
        query = query.where(Message.submitting_at < now - older_than)
    with store_errors("finding unresolved submits"), store.sessions() as session:
        return [tuple(row) for row in session.execute(query.limit(10_000))]

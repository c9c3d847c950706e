"""The durable queue of deliveries (``callback_deliveries``): add, claim, record.

A row is ``pending`` until an endpoint acknowledges it (any 2xx: ``delivered``, never
sent again) or it has failed ``[api] callback_max_attempts`` times (``dead``: kept, shown,
re-queued by :func:`requeue`). Its ``next_attempt_at`` is when it is due:

- :func:`claim` takes due rows and moves ``next_attempt_at`` forward by a *lease* in the
  same statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer), so two
  pumps never hold the same row: the other sees it as not due until the lease ends;
- :func:`record` writes what each attempt got: delivered, or the next attempt after a
  back-off (``min(backoff * 2**(attempts-1), max)``, jittered), or dead. Only rows still
  ``pending`` are touched, so a late result never undoes a delivery.

A pump that dies between claiming and recording leaves its rows leased: they are due
again when the lease runs out, and sent again - at least once, never lost.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    CALLBACK_STATES,
    CallbackDelivery,
    CallbackEndpoint,
    utc_now,
)
from jingxin.errors import InputError

CHUNK = 1_000
TABLE = CallbackDelivery.__table__


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed delivery, with where it goes."""

    id: int
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # before this one
    created_at: datetime
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST got: an HTTP status, or the error that prevented one."""

    status: int | None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def unreachable(self) -> bool:
        """No answer at all (timeout, refused, reset): the endpoint, not this row."""
        return self.status is None


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a failed delivery is tried again, and when it is given up."""

    seconds: float
    max_seconds: float
    max_attempts: int

    @classmethod
    def from_settings(cls, api: Any) -> Backoff:
        return cls(seconds=api.callback_backoff_seconds,
                   max_seconds=api.callback_backoff_max_seconds,
                   max_attempts=api.callback_max_attempts)  # fmt: skip

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the next try after ``attempts`` failures: doubled each time up to
        the cap, then between half and all of it (so endpoints coming back are not hit by
        every pump at once)."""
        full = min(self.seconds * 2 ** max(attempts - 1, 0), self.max_seconds)
        return full * (0.5 + 0.5 * (rng or random).random())


def queue_deliveries(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """``INSERT ... ON CONFLICT (event_key) DO NOTHING`` of ``rows`` (tenant_id, kind,
    event_key, payload), due at ``now``; how many were new."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(TABLE).on_conflict_do_nothing(
        index_elements=["event_key"]).returning(TABLE.c.id)  # fmt: skip
    added = 0
    for first in range(0, len(rows), CHUNK):
        chunk = [{**row, "state": "pending", "attempts": 0, "next_attempt_at": now,
                  "created_at": now} for row in rows[first:first + CHUNK]]  # fmt: skip
        added += len(conn.execute(statement, chunk).all())
    return added


def claim(store: Store, *, now: datetime, limit: int, lease: timedelta) -> list[Due]:
    """Up to ``limit`` due deliveries of tenants with an enabled endpoint, oldest due
    first, leased until ``now + lease``."""
    d, e = CallbackDelivery, CallbackEndpoint
    due = (select(d.id)
           .join(e, (e.tenant_id == d.tenant_id) & e.enabled.is_(True))
           .where(d.state == "pending", d.next_attempt_at <= now)
           .order_by(d.next_attempt_at, d.id).limit(limit)
           .with_for_update(of=d, skip_locked=True))  # fmt: skip
    statement = (update(d)
                 .where(d.id.in_(due.scalar_subquery()), d.state == "pending",
                        d.next_attempt_at <= now)
                 .values(next_attempt_at=now + lease)
                 .returning(d.id, d.tenant_id, d.kind, d.payload, d.attempts, d.created_at))  # fmt: skip
    with store_errors("claiming callback deliveries"), store.engine.begin() as conn:
        rows = conn.execute(statement).all()
        tenants = sorted({row.tenant_id for row in rows})
        targets = {t: (url, secret) for t, url, secret in conn.execute(
            select(e.tenant_id, e.url, e.secret).where(e.tenant_id.in_(tenants)))} if rows else {}  # fmt: skip
    return sorted((Due(row.id, row.tenant_id, row.kind, row.payload, row.attempts,
                       row.created_at, *targets[row.tenant_id])
                   for row in rows if row.tenant_id in targets), key=lambda due: due.id)  # fmt: skip


def record(store: Store, *, results: Sequence[tuple[Due, Attempt]], now: datetime,
           backoff: Backoff, rng: random.Random | None = None) -> list[tuple[Due, str]]:  # fmt: skip
    """Write what each attempt got, in one transaction; each delivery's new state."""
    d = CallbackDelivery
    delivered, failed, states = [], [], []
    for due, attempt in results:
        tries = due.attempts + 1
        if attempt.ok:
            delivered.append({"did": due.id, "n": tries, "st": attempt.status})
            states.append((due, "delivered"))
            continue
        state = "dead" if tries >= backoff.max_attempts else "pending"
        failed.append({"did": due.id, "n": tries, "st": attempt.status,
                       "err": (attempt.error or f"HTTP {attempt.status}")[:1000], "state": state,
                       "at": now + timedelta(seconds=backoff.delay(tries, rng))})  # fmt: skip
        states.append((due, state))
    pending = (d.id == bindparam("did"), d.state == "pending")
    with store_errors("recording callback attempts"), store.engine.begin() as conn:
        if delivered:
            conn.execute(update(d).where(*pending).values(
                state="delivered", delivered_at=now, attempts=bindparam("n"),
                last_status=bindparam("st"), last_error=None), delivered)  # fmt: skip
        if failed:
            conn.execute(update(d).where(*pending).values(
                state=bindparam("state"), attempts=bindparam("n"), last_status=bindparam("st"),
                last_error=bindparam("err"), next_attempt_at=bindparam("at")), failed)  # fmt: skip
    return states


def release(store: Store, *, deliveries: Sequence[Due], at: datetime) -> None:
    """Hand back claimed deliveries not attempted, due again at ``at`` (no attempt counted)."""
    if not deliveries:
        return
    d = CallbackDelivery
    with store_errors("releasing callback deliveries"), store.engine.begin() as conn:
        conn.execute(update(d).where(d.id == bindparam("did"), d.state == "pending")
                     .values(next_attempt_at=at), [{"did": due.id} for due in deliveries])  # fmt: skip


# ----------------------------------------------------------------------------- reading


def check_state(state: str | None, *, field: str = "state") -> str | None:
    if state is not None and state not in CALLBACK_STATES:
        raise InputError(f"{field}: {state!r} is not one of {', '.join(CALLBACK_STATES)}")
    return state


def list_deliveries(session: Session, *, tenant_id: str, state: str | None = None,
                    limit: int = 50, offset: int = 0) -> tuple[list[CallbackDelivery], int]:  # fmt: skip
    """``tenant_id``'s deliveries, newest first (optionally in one state), and how many."""
    d = CallbackDelivery
    where = [d.tenant_id == tenant_id]
    if check_state(state) is not None:
        where.append(d.state == state)
    with store_errors("listing callback deliveries"):
        total = session.scalar(select(func.count()).select_from(d).where(*where)) or 0
        rows = list(session.scalars(select(d).where(*where).order_by(d.id.desc())
                                    .limit(limit).offset(offset)))  # fmt: skip
    return rows, total


def counts(session: Session, *, tenant_id: str | None = None) -> dict[str, dict[str, int]]:
    """Deliveries per tenant and state."""
    d = CallbackDelivery
    query = select(d.tenant_id, d.state, func.count()).group_by(d.tenant_id, d.state)
    if tenant_id is not None:
        query = query.where(d.tenant_id == tenant_id)
    found: dict[str, dict[str, int]] = {}
    with store_errors("counting callback deliveries"):
        for tenant, state, n in session.execute(query):
            found.setdefault(tenant, dict.fromkeys(CALLBACK_STATES, 0))[state] = n
    return found


def requeue(session: Session, *, tenant_id: str | None = None, dead: bool = False,
            now: datetime | None = None) -> int:  # fmt: skip
    """Make waiting deliveries due now (those backing off after a failure); with ``dead``,
    also bring dead ones back with their attempts reset. ``tenant_id`` None: every
    tenant's. How many rows changed."""
    d = CallbackDelivery
    now = now or utc_now()
    scope = [] if tenant_id is None else [d.tenant_id == tenant_id]
    with store_errors("re-queueing callback deliveries"):
        changed = session.execute(
            update(d).where(*scope, d.state == "pending", d.attempts > 0, d.next_attempt_at > now)
            .values(next_attempt_at=now), execution_options={"preserve_rowcount": True},
        ).rowcount  # fmt: skip
        if dead:
            changed += session.execute(
                update(d).where(*scope, d.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=now),
                execution_options={"preserve_rowcount": True}).rowcount  # fmt: skip
    return changed

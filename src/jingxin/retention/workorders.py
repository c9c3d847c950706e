"""Work orders' lifecycle: who may move an order where, the branch's worklist, and the
reactivation rate per branch.

An order is born ``created`` by the daily extraction (:mod:`jingxin.retention.double_stop`)
and then moves only along :data:`TRANSITIONS`::

    created ──► assigned ──► visited ──► reactivated
                 │  ▲  │        │  ▲
                 └──┘  │        └──┘      (re-assigned; visited again)
                       └──────────────► reactivated | lost

* ``assigned`` needs an assignee: an order nobody holds is not assigned.
* A person closes an order (``reactivated`` / ``lost``) only once somebody holds it
  (``assigned`` or ``visited``): a result nobody worked for would flatter the branch.
* ``reactivated`` and ``lost`` are final.
* The system (the daily extraction) may close any open order whatever its state, because
  the warehouse itself is the evidence: the subscriber's status is ``active`` again
  (reactivated) or ``churned`` (lost). :func:`close_by_system` is that path and the only
  one that skips the table; its events say ``by='system'``.

Every change commits together with its :class:`~jingxin.data.store.models.journeys.
WorkOrderEvent` (who, when, the note) in one transaction, and the order row is locked
while it is read and changed, so two people moving one order at once are served one after
the other: the second sees the first's state and is refused if the move no longer applies.

The worklist (:func:`list_orders`) is ordered by churn propensity, highest first. What the
score measures is the risk of losing the subscriber for good, not the odds that a visit
succeeds (that would need an uplift model trained on visit outcomes, which nobody has
yet): the order puts first those a branch stands to lose, where a visit can change the
most, and leaves last those who would probably top up on their own. Orders without a
score come after the scored ones, the longest barred first.

An order with a score also has the score's top reasons (feature, value, contribution),
written by the extraction on a line of the ``created`` event's note that starts with
:data:`REASONS_LABEL`; :func:`order_reasons` reads them back for the worklist and
``jingxin retention show``.

Each store-level function (for the CLI) has a session-level form beside it (:func:`move`,
:func:`select_orders`, :func:`read_events`, :func:`read_reasons`) for a caller that works
inside its own transaction - the API, which also scopes by tenant and audits there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.orm import Session

from jingxin.data.store.models.journeys import (
    WORK_ORDER_STATES,
    WorkOrder,
    WorkOrderEvent,
)
from jingxin.errors import ConflictError, InputError

if TYPE_CHECKING:
    from jingxin.audience.reasons import Reason
    from jingxin.data.store.engine import Store

OPEN_STATES = ("created", "assigned", "visited")
CLOSED_STATES = ("reactivated", "lost")
# from -> where a person may move it (the system's closes are not in this table)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "created": ("assigned",),
    "assigned": ("assigned", "visited", "reactivated", "lost"),
    "visited": ("visited", "reactivated", "lost"),
    "reactivated": (),
    "lost": (),
}
LIST_STATES = (*WORK_ORDER_STATES, "open")  # "open": any of OPEN_STATES
CHUNK = 500  # ids per statement: well under SQLite's bound-parameter cap
REASONS_LABEL = "churn reasons: "  # starts the created note's line with the top reasons


class OrderNotFound(InputError):
    """No such work order (or, asked with a tenant, none of that tenant's)."""


class TransitionRefused(ConflictError):
    """A move :data:`TRANSITIONS` does not allow from the order's state."""


@dataclass(frozen=True, slots=True)
class BranchRate:
    """One branch's orders since a date and what became of them.

    ``rate`` is reactivated / orders: the share of the branch's double-stopped
    subscribers that came back, open orders included in the denominator (an order still
    being worked has not been won). ``visited`` counts orders visited at least once,
    whatever their state now; ``reactivated`` includes those the warehouse showed active
    again before anybody visited (closed by the system)."""

    branch: str
    orders: int
    open: int
    visited: int
    reactivated: int
    lost: int
    rate: float


def transition(store: Store, order_id: int, to: str, *, by: str, note: str | None = None,
               assignee: str | None = None, now: datetime | None = None) -> WorkOrder:
    """Move order ``order_id`` to state ``to`` as person ``by``; the order as it is now.

    Refused with an :class:`InputError` naming the order and both states when the move is
    not in :data:`TRANSITIONS`, and when ``to`` is ``assigned`` without an ``assignee``."""
    _check_request(order_id, to, by=by, assignee=assignee)
    with store.transaction() as session:
        return move(session, order_id, to, by=by, note=note, assignee=assignee, now=now)


def move(session: Session, order_id: int, to: str, *, by: str, note: str | None = None,
         assignee: str | None = None, now: datetime | None = None,
         tenant_id: str | None = None) -> WorkOrder:
    """:func:`transition` inside the caller's transaction; with ``tenant_id``, an order of
    another tenant is :class:`OrderNotFound` like a missing one. A move not in
    :data:`TRANSITIONS` is :class:`TransitionRefused`."""
    _check_request(order_id, to, by=by, assignee=assignee)
    moment = now or datetime.now(UTC)
    query = select(WorkOrder).where(WorkOrder.id == order_id).with_for_update()
    if tenant_id is not None:
        query = query.where(WorkOrder.tenant_id == tenant_id)
    order = session.scalars(query).first()
    if order is None:
        raise OrderNotFound(f"work order {order_id}: no such order")
    allowed = TRANSITIONS[order.state]
    if to not in allowed:
        raise TransitionRefused(
            f"work order {order_id}: cannot go from {order.state} to {to} "
            f"(from {order.state}: {', '.join(allowed) or 'nothing, it is closed'})")
    order.state = to
    if to == "assigned":
        order.assignee = assignee
    order.updated_at = moment
    session.add(WorkOrderEvent(order_id=order.id, state=to, by=by, note=_event_note(
        note, to=to, assignee=assignee), at=moment))
    session.flush()
    return order


def _check_request(order_id: int, to: str, *, by: str, assignee: str | None) -> None:
    if to not in WORK_ORDER_STATES:
        raise InputError(f"work order {order_id}: {to!r} is not a state "
                         f"({', '.join(WORK_ORDER_STATES)})")
    if to == "created":
        raise InputError(f"work order {order_id}: only the extraction creates orders")
    if not by or not by.strip():
        raise InputError(f"work order {order_id}: say who moves it (by)")
    if to == "assigned" and (assignee is None or not assignee.strip()):
        raise InputError(f"work order {order_id}: assigning needs an assignee (--to NAME)")
    if to != "assigned" and assignee is not None:
        raise InputError(f"work order {order_id}: an assignee goes with 'assigned' only, "
                         f"not {to!r}")


def _event_note(note: str | None, *, to: str, assignee: str | None) -> str | None:
    """The event keeps who the order went to, so a re-assignment leaves its trace."""
    if to != "assigned":
        return note
    return f"to {assignee}" + (f": {note}" if note else "")


def close_by_system(store: Store, order_ids: Sequence[int], *, to: str, note: str,
                    now: datetime | None = None) -> int:
    """Close the still-open orders among ``order_ids`` as ``to`` (reactivated / lost) on
    the warehouse's evidence; return how many it closed. An order a person closed in the
    meantime is left as it is (the update only touches open orders)."""
    if to not in CLOSED_STATES:
        raise InputError(f"the system closes orders as {' or '.join(CLOSED_STATES)}, "
                         f"not {to!r}")
    moment = now or datetime.now(UTC)
    closed = 0
    for start in range(0, len(order_ids), CHUNK):
        chunk = list(order_ids[start : start + CHUNK])
        with store.transaction() as session:
            done = session.execute(
                update(WorkOrder)
                .where(WorkOrder.id.in_(chunk), WorkOrder.state.in_(OPEN_STATES))
                .values(state=to, updated_at=moment)
                .returning(WorkOrder.id)
            ).scalars().all()
            session.add_all(WorkOrderEvent(order_id=i, state=to, by="system", note=note,
                                           at=moment) for i in done)
            closed += len(done)
    return closed


def list_orders(store: Store, *, branch: str | None = None, state: str | None = None,
                limit: int = 50) -> list[WorkOrder]:
    """Double-stop orders, highest churn propensity first (see the module docstring);
    ``state`` is one of the states or ``open``; None lists every state."""
    query = select_orders(branch=branch, state=state)
    if limit < 1:
        raise InputError(f"--limit: {limit} must be at least 1")
    with store.transaction() as session:
        return list(session.scalars(query.limit(limit)))


def select_orders(*, branch: str | None = None, state: str | None = None,
                  tenant_id: str | None = None) -> Select[tuple[WorkOrder]]:
    """The worklist's query (:func:`list_orders`), of ``tenant_id`` when given; a
    ``state`` that is not one of :data:`LIST_STATES` is an InputError."""
    if state is not None and state not in LIST_STATES:
        raise InputError(f"--state: {state!r} is not one of {', '.join(LIST_STATES)}")
    query = select(WorkOrder).where(WorkOrder.kind == "double_stop").order_by(
        WorkOrder.propensity.desc().nulls_last(), WorkOrder.barred_since, WorkOrder.id)
    if tenant_id is not None:
        query = query.where(WorkOrder.tenant_id == tenant_id)
    if branch is not None:
        query = query.where(WorkOrder.branch == branch)
    if state == "open":
        query = query.where(WorkOrder.state.in_(OPEN_STATES))
    elif state is not None:
        query = query.where(WorkOrder.state == state)
    return query


def get_order(store: Store, order_id: int) -> WorkOrder:
    """One order; an InputError naming the id when there is none."""
    with store.transaction() as session:
        order = session.get(WorkOrder, order_id)
    if order is None:
        raise OrderNotFound(f"work order {order_id}: no such order")
    return order


def order_reasons(store: Store, order_ids: Sequence[int]) -> dict[int, list[Reason]]:
    """The churn score's top reasons of each order that has them (see the module
    docstring), by order id."""
    out: dict[int, list[Reason]] = {}
    ids = list(order_ids)
    for start in range(0, len(ids), CHUNK):
        with store.transaction() as session:
            out.update(read_reasons(session, ids[start : start + CHUNK]))
    return out


def read_reasons(session: Session, order_ids: Sequence[int]) -> dict[int, list[Reason]]:
    """:func:`order_reasons` in the caller's transaction."""
    from jingxin.audience.reasons import parse_reasons

    out: dict[int, list[Reason]] = {}
    ids = list(order_ids)
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(select(WorkOrderEvent.order_id, WorkOrderEvent.note).where(
            WorkOrderEvent.order_id.in_(ids[start : start + CHUNK]),
            WorkOrderEvent.state == "created")).all()
        for order_id, note in rows:
            for line in (note or "").splitlines():
                if line.startswith(REASONS_LABEL):
                    out[order_id] = parse_reasons(line[len(REASONS_LABEL):])
    return out


def order_events(store: Store, order_id: int) -> list[WorkOrderEvent]:
    """An order's lifecycle, oldest first."""
    with store.transaction() as session:
        return read_events(session, order_id)


def read_events(session: Session, order_id: int) -> list[WorkOrderEvent]:
    """:func:`order_events` in the caller's transaction."""
    return list(session.scalars(select(WorkOrderEvent).where(
        WorkOrderEvent.order_id == order_id).order_by(WorkOrderEvent.at, WorkOrderEvent.id)))


def reactivation_rate(store: Store, *, since: date | None = None) -> list[BranchRate]:
    """Per branch (by name): the double-stop orders extracted on or after ``since`` (all
    when None) and what became of them; see :class:`BranchRate`."""
    visited = (select(WorkOrderEvent.order_id).where(WorkOrderEvent.state == "visited")
               .distinct().subquery())  # fmt: skip

    def count_of(*states: str):
        return func.sum(case((WorkOrder.state.in_(states), 1), else_=0))

    query = (
        select(WorkOrder.branch, func.count(WorkOrder.id), count_of(*OPEN_STATES),
               func.count(visited.c.order_id), count_of("reactivated"), count_of("lost"))
        .outerjoin(visited, visited.c.order_id == WorkOrder.id)
        .where(WorkOrder.kind == "double_stop")
        .group_by(WorkOrder.branch)
        .order_by(WorkOrder.branch)
    )
    if since is not None:
        query = query.where(WorkOrder.extracted_on >= since)
    with store.transaction() as session:
        rows = session.execute(query).all()
    return [BranchRate(branch=b, orders=n, open=int(o or 0), visited=v,
                       reactivated=int(r or 0), lost=int(lo or 0), rate=int(r or 0) / n)
            for b, n, o, v, r, lo in rows]

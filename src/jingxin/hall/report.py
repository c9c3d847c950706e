"""The hall's reports: who used it, what they asked and bought, how referrals spread, what
they thought of it - and the incentive leaderboard of staff and branches.

Read-only, over the hall's own records (``hall_interactions``, ``hall_orders``,
``hall_referrals``, ``hall_points``, ``hall_feedback``, ``hall_complaints``), with counts
and sums aggregated in SQL (SQLAlchemy core: the same statements on SQLite and
PostgreSQL). Only the referral chains are walked in Python: a chain is a path through the
referral graph, which an aggregate cannot give.

Definitions the numbers rest on:

* users - distinct numbers with at least one interaction in the window;
* zone conversion - orders placed from a zone (``hall_orders.zone``, state ``placed``)
  over the distinct numbers that listed the zone (an interaction with command
  :data:`ZONE_COMMAND` and that zone);
* a referral chain - from a referrer nobody referred (a root), the longest path
  referrer → friend → the friend's own referrals …; its depth is the number of referrals
  on the path;
* NPS - the share of promoters (9-10) minus the share of detractors (0-6) among the
  NPS answers, in points from -100 to 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    desc,
    distinct,
    func,
    literal,
    null,
    select,
    union_all,
)

from jingxin.data.store.engine import Store
from jingxin.data.store.models.hall import (
    HallComplaint,
    HallFeedback,
    HallInteraction,
    HallOrder,
    HallReferral,
    HallStaff,
    PointsEntry,
)
from jingxin.errors import InputError

ZONE_COMMAND = "zone"  # the interaction of a subscriber listing a zone (41, 42, 43)
LONGEST_CHAINS = 5  # the report names this many of the longest chains
UNREGISTERED = "(unregistered)"  # the branch of a staff code hall_staff does not know
LEADERBOARD_BY = ("staff", "branch")


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class ZoneConversion:
    zone: str
    viewers: int  # distinct numbers that listed the zone
    orders: int  # orders from the zone, in any state
    placed: int  # of which placed
    conversion: float | None  # placed / viewers (None: nobody listed it)


@dataclass(frozen=True, slots=True)
class Chain:
    msisdns: tuple[str, ...]  # root referrer first
    depth: int  # referrals on the path
    converted: int  # of which the friend ordered


@dataclass(frozen=True, slots=True)
class ReferralSummary:
    referrals: int
    converted: int
    converted_share: float | None
    chains: int  # one per root referrer
    max_depth: int
    depths: dict[int, int]  # depth of a root's longest chain → roots
    longest: tuple[Chain, ...]


@dataclass(frozen=True, slots=True)
class Nps:
    answers: int
    promoters: int
    passives: int
    detractors: int
    score: float | None  # -100 .. 100; None without answers


@dataclass(frozen=True, slots=True)
class HallReport:
    since: datetime
    until: datetime
    months: int
    tenant_id: str | None
    users: int
    interactions: int
    kinds: dict[str, int]  # "query" | "order" | "other" → interactions
    zones: tuple[ZoneConversion, ...]
    order_states: dict[str, int]
    referrals: ReferralSummary
    nps: Nps
    complaints: int

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (instants as ISO text)."""
        out = asdict(self)
        out["since"], out["until"] = self.since.isoformat(), self.until.isoformat()
        out["referrals"]["depths"] = {str(k): v for k, v in self.referrals.depths.items()}
        return out


def hall_report(store: Store, *, now: datetime, months: int = 3,
                tenant_id: str | None = None) -> HallReport:
    """The hall over the ``months`` calendar months up to ``now`` (one tenant, or all)."""
    if months < 1:
        raise InputError(f"--months: {months} must be at least 1")
    since = months_before(now, months)
    with store.transaction() as session:
        run = session.execute

        def window(column: Any, tenant: Any) -> list[ColumnElement[bool]]:
            where = [column >= since, column <= now]
            return where + ([tenant == tenant_id] if tenant_id is not None else [])

        seen = window(HallInteraction.at, HallInteraction.tenant_id)
        users = run(select(func.count(distinct(HallInteraction.msisdn))).where(*seen)).scalar_one()
        kinds = _counts(run(select(HallInteraction.kind, func.count())
                            .where(*seen).group_by(HallInteraction.kind)).all())  # fmt: skip
        ordered = window(HallOrder.created_at, HallOrder.tenant_id)
        states = _counts(run(select(HallOrder.state, func.count())
                             .where(*ordered).group_by(HallOrder.state)).all())  # fmt: skip
        zones = _zones(run, seen=seen, ordered=ordered)
        referred = window(HallReferral.created_at, HallReferral.tenant_id)
        edges = run(select(HallReferral.referrer, HallReferral.friend, HallReferral.state)
                    .where(*referred)).all()  # fmt: skip
        nps = _nps(run, window(HallFeedback.at, HallFeedback.tenant_id))
        complaints = run(select(func.count()).select_from(HallComplaint).where(
            *window(HallComplaint.at, HallComplaint.tenant_id))).scalar_one()  # fmt: skip
    return HallReport(since=since, until=now, months=months, tenant_id=tenant_id, users=users,
                      interactions=sum(kinds.values()), kinds=kinds, zones=zones,
                      order_states=states, referrals=referral_chains(edges), nps=nps,
                      complaints=complaints)  # fmt: skip


def months_before(moment: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months earlier (the day clamped to the month:
    31 May less three months is 28 or 29 February)."""
    import calendar

    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _counts(rows: Sequence[Any]) -> dict[str, int]:
    return {key: int(n) for key, n in sorted(rows, key=lambda r: str(r[0]))}


def _zones(run: Any, *, seen: list[Any], ordered: list[Any]) -> tuple[ZoneConversion, ...]:
    """Viewers and orders of each zone that was listed or ordered from."""
    viewers = dict(run(
        select(HallInteraction.zone, func.count(distinct(HallInteraction.msisdn)))
        .where(*seen, HallInteraction.command == ZONE_COMMAND, HallInteraction.zone.is_not(None))
        .group_by(HallInteraction.zone)).all())  # fmt: skip
    placed = func.sum(case((HallOrder.state == "placed", 1), else_=0))
    orders = {z: (int(n), int(p or 0)) for z, n, p in run(
        select(HallOrder.zone, func.count(), placed)
        .where(*ordered, HallOrder.zone.is_not(None)).group_by(HallOrder.zone)).all()}  # fmt: skip
    out = []
    for zone in sorted(set(viewers) | set(orders)):
        n_orders, n_placed = orders.get(zone, (0, 0))
        n_viewers = int(viewers.get(zone, 0))
        out.append(ZoneConversion(zone=zone, viewers=n_viewers, orders=n_orders, placed=n_placed,
                                  conversion=n_placed / n_viewers if n_viewers else None))
    return tuple(out)


def _nps(run: Any, where: list[Any]) -> Nps:
    score = HallFeedback.score
    answers, promoters, detractors = run(
        select(func.count(), func.sum(case((score >= 9, 1), else_=0)),
               func.sum(case((score <= 6, 1), else_=0)))
        .where(*where, HallFeedback.kind == "nps", score.is_not(None))).one()  # fmt: skip
    promoters, detractors = int(promoters or 0), int(detractors or 0)
    return Nps(answers=answers, promoters=promoters, detractors=detractors,
               passives=answers - promoters - detractors,
               score=round(100 * (promoters - detractors) / answers, 1) if answers else None)


# ----------------------------------------------------------------------------- chains


def referral_chains(edges: Sequence[tuple[str, str, str]], *,
                    longest: int = LONGEST_CHAINS) -> ReferralSummary:
    """Chains through the referral graph of ``(referrer, friend, state)`` edges.

    Every referrer nobody referred is a root. Numbers no root reaches hang below a group
    that only referred each other (A → B → A): such a group is entered once, at a number
    on its cycle. A root's chain is its longest path (most converted referrals among
    equals); a referral back to a number already on the way ends a path, which keeps the
    walk linear in the edges."""
    children: dict[str, list[tuple[str, bool]]] = {}
    referrers: dict[str, list[str]] = {}
    for referrer, friend, state in edges:
        children.setdefault(referrer, []).append((friend, state == "converted"))
        referrers.setdefault(friend, []).append(referrer)
    for friends in children.values():
        friends.sort()
    best: dict[str, tuple[int, int, str | None]] = {}  # number → (depth, converted, next)
    roots: list[str] = []
    for number in [*sorted(r for r in children if r not in referrers), *sorted(children)]:
        if number not in best:
            root = number if number not in referrers else _on_cycle(number, referrers)
            roots.append(root)
            _walk(root, children, best)
    chains = [_chain(root, best) for root in roots]
    depths: dict[int, int] = {}
    for chain in chains:
        depths[chain.depth] = depths.get(chain.depth, 0) + 1
    converted = sum(1 for _, _, state in edges if state == "converted")
    ranked = sorted(chains, key=lambda c: (-c.depth, -c.converted, c.msisdns))
    return ReferralSummary(
        referrals=len(edges), converted=converted,
        converted_share=converted / len(edges) if edges else None, chains=len(chains),
        max_depth=max(depths, default=0), depths=dict(sorted(depths.items())),
        longest=tuple(ranked[:longest]))  # fmt: skip


def _walk(root: str, children: Mapping[str, list[tuple[str, bool]]],
          best: dict[str, tuple[int, int, str | None]]) -> None:
    """Depth first from ``root`` (without recursion: chains can outgrow Python's stack),
    giving each number, once all its friends are done, its longest way on in ``best``.
    A friend still on the way down (not in ``best`` yet) is a cycle and not followed."""
    entered = {root}
    stack = [(root, iter(children.get(root, ())))]
    while stack:
        number, friends = stack[-1]
        for friend, _ in friends:
            if friend not in entered and friend not in best:
                entered.add(friend)
                stack.append((friend, iter(children.get(friend, ()))))
                break
        else:
            stack.pop()
            way: tuple[int, int, str | None] = (0, 0, None)
            for friend, converted in children.get(number, ()):
                if friend in best and (best[friend][0] + 1, best[friend][1] + converted) > way[:2]:
                    way = (best[friend][0] + 1, best[friend][1] + converted, friend)
            best[number] = way


def _on_cycle(number: str, referrers: Mapping[str, list[str]]) -> str:
    """A number on the cycle found by going up from ``number`` (smallest referrer first):
    every number no root reaches has its referrers among such numbers, so going up
    must come round."""
    seen: set[str] = set()
    while number not in seen:
        seen.add(number)
        number = min(referrers[number])
    return number


def _chain(root: str, best: Mapping[str, tuple[int, int, str | None]]) -> Chain:
    path = [root]
    while (after := best[path[-1]][2]) is not None:
        path.append(after)
    depth, converted, _ = best[root]
    return Chain(msisdns=tuple(path), depth=depth, converted=converted)


# ----------------------------------------------------------------------------- leaderboard


@dataclass(frozen=True, slots=True)
class LeaderRow:
    rank: int
    key: str  # the staff code (by staff) or the branch (by branch)
    name: str | None  # the staff member's name (by staff)
    branch: str
    orders: int  # orders placed quoting the code
    referrals: int  # referrals with the code that converted
    points: int  # points granted with the code
    staff: int = field(default=1)  # members counted (by branch)


def leaderboard(store: Store, *, since: datetime, by: Literal["staff", "branch"] = "staff",
                tenant_id: str | None = None) -> list[LeaderRow]:
    """Staff (or branches) ranked by orders placed, then converted referrals, then points
    granted, since ``since``. Staff codes match whatever their case (subscribers type them);
    a code ``hall_staff`` does not know is ranked under the branch :data:`UNREGISTERED`."""
    if by not in LEADERBOARD_BY:
        raise InputError(f"--by: {by!r} is not one of {', '.join(LEADERBOARD_BY)}")
    activity = _activity(since=since, tenant_id=tenant_id).subquery("activity")
    code = func.upper(activity.c.code)
    credited = (
        select(code.label("code"), HallStaff.name.label("name"),
               func.coalesce(HallStaff.branch, UNREGISTERED).label("branch"),
               activity.c.orders, activity.c.referrals, activity.c.points)
        .select_from(activity.outerjoin(HallStaff, func.upper(HallStaff.code) == code))
    ).subquery("credited")  # fmt: skip
    c = credited.c
    totals = (func.sum(c.orders).label("orders"), func.sum(c.referrals).label("referrals"),
              func.sum(c.points).label("points"))  # fmt: skip
    if by == "staff":
        query = select(c.code, func.max(c.name), func.max(c.branch), *totals,
                       literal(1)).group_by(c.code)  # fmt: skip
    else:
        query = select(c.branch, null(), c.branch, *totals,
                       func.count(distinct(c.code))).group_by(c.branch)  # fmt: skip
    key = c.code if by == "staff" else c.branch
    query = query.order_by(*(desc(t) for t in totals), key)
    with store.transaction() as session:
        rows = session.execute(query).all()
    return [LeaderRow(rank=i, key=k, name=n, branch=b, orders=int(o or 0),
                      referrals=int(r or 0), points=int(p or 0), staff=int(s))
            for i, (k, n, b, o, r, p, s) in enumerate(rows, start=1)]  # fmt: skip


def _activity(*, since: datetime, tenant_id: str | None) -> Select[Any]:
    """One row per staff code and kind of credit: (code, orders, referrals, points)."""
    zero = literal(0)

    def scoped(model: Any, column: Any) -> list[ColumnElement[bool]]:
        where = [model.staff_code.is_not(None), column >= since]
        return where + ([model.tenant_id == tenant_id] if tenant_id is not None else [])

    orders = (select(HallOrder.staff_code.label("code"), func.count().label("orders"),
                     zero.label("referrals"), zero.label("points"))
              .where(*scoped(HallOrder, HallOrder.created_at), HallOrder.state == "placed")
              .group_by(HallOrder.staff_code))  # fmt: skip
    referrals = (select(HallReferral.staff_code, zero, func.count(), zero)
                 .where(*scoped(HallReferral, HallReferral.converted_at),
                        HallReferral.state == "converted")
                 .group_by(HallReferral.staff_code))  # fmt: skip
    points = (select(PointsEntry.staff_code, zero, zero, func.sum(PointsEntry.delta))
              .where(*scoped(PointsEntry, PointsEntry.at), PointsEntry.delta > 0)
              .group_by(PointsEntry.staff_code))  # fmt: skip
    return union_all(orders, referrals, points)


# ----------------------------------------------------------------------------- listings


def list_orders(store: Store, *, state: str | None = None, msisdn: str | None = None,
                tenant_id: str | None = None, limit: int = 50) -> list[HallOrder]:
    """Hall orders, newest first (``state``: one of the order states)."""
    from jingxin.data.store.models.hall import ORDER_STATES

    if state is not None and state not in ORDER_STATES:
        raise InputError(f"--state: {state!r} is not one of {', '.join(ORDER_STATES)}")
    if limit < 1:
        raise InputError(f"--limit: {limit} must be at least 1")
    query = select(HallOrder).order_by(HallOrder.created_at.desc(), HallOrder.id.desc())
    if state is not None:
        query = query.where(HallOrder.state == state)
    if msisdn is not None:
        query = query.where(HallOrder.msisdn == msisdn)
    if tenant_id is not None:
        query = query.where(HallOrder.tenant_id == tenant_id)
    with store.transaction() as session:
        return list(session.scalars(query.limit(limit)))

"""How each operational table becomes events: one step per source table, set-based SQL.

Used by :func:`jingxin.analytics.events.collect`, which runs the steps in this order,
each in a transaction of its own (its events and its mark commit together). The table of
kinds, the keys and how the marks move are described in :mod:`jingxin.analytics.events`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.models import (
    DEFAULT_TENANT_ID,
    AnalyticsEvent,
    BossOrder,
    EventMark,
    ExperimentAssignment,
    HallComplaint,
    LinkClick,
    Message,
    MoMessage,
    MoOutcome,
    UtcDateTime,
)

SETTLE = timedelta(minutes=10)  # rows younger than this are read again next time
CHUNK = 5_000  # rows per executemany
REQUIRED = ("event_key", "kind", "at", "msisdn", "tenant_id")
OPTIONAL = ("message_id", "source", "source_id", "campaign_id", "arm", "value", "detail")
COLUMNS = (*REQUIRED, *OPTIONAL, "recorded_at")

EVENTS = AnalyticsEvent.__table__


# ----------------------------------------------------------------------------- messages


def _messages(conn: Connection, now: datetime) -> Counter[str]:
    """sent / delivered / failed of the messages from the mark on (see the module)."""
    start, upto = read_mark(conn, "messages"), conn.scalar(select(func.max(Message.id)))
    if upto is None or upto <= start:
        return Counter()
    span = (Message.id > start, Message.id <= upto)
    ended = Message.finished_at.is_not(None)
    failed = and_(ended, Message.state != "delivered",
                  or_(Message.error_code.is_(None), Message.error_code != "cancelled"))
    detail = Message.state + func.coalesce(literal(":") + Message.error_code, "")
    counts = Counter({
        "sent": _insert(conn, _of_message("sent", Message.submitted_at, now)
                        .where(*span, Message.submitted_at.is_not(None))),
        "delivered": _insert(conn, _of_message("delivered", Message.finished_at, now)
                             .where(*span, ended, Message.state == "delivered")),
        "failed": _insert(conn, _of_message("failed", Message.finished_at, now, detail)
                          .where(*span, failed)),
    })  # fmt: skip
    # The mark stays below the oldest message not final yet, or too new to be settled.
    open_ = or_(Message.finished_at.is_(None), Message.created_at > now - SETTLE)
    first = conn.scalar(select(func.min(Message.id)).where(*span, open_))
    set_mark(conn, "messages", upto if first is None else first - 1, now)
    return counts


def _of_message(kind: str, at: Any, now: datetime, detail: Any = None) -> Any:
    """The SELECT of one per-message event from ``messages`` (add its WHERE)."""
    return select(_key(kind, Message.id), literal(kind, String), at, Message.msisdn,
                  Message.tenant_id, Message.id, Message.source, Message.source_id,
                  Message.campaign_id, Message.arm, cast(null(), Float),
                  cast(null(), String) if detail is None else detail, _now(now))  # fmt: skip


# ----------------------------------------------------------------------------- clicks


def _clicks(conn: Connection, now: datetime) -> Counter[str]:
    """clicked: the first non-bot click per message (found by id, else by token)."""
    start, upto = read_mark(conn, "link_clicks"), conn.scalar(select(func.max(LinkClick.id)))
    if upto is None or upto <= start:
        return Counter()
    span = (LinkClick.id > start, LinkClick.id <= upto)
    by_token = select(Message.id).where(Message.link_token == LinkClick.token) \
        .correlate(LinkClick).scalar_subquery()  # fmt: skip
    clicks = select(func.coalesce(LinkClick.message_id, by_token).label("mid"),
                    LinkClick.at.label("at")) \
        .where(*span, LinkClick.bot.is_(False)).subquery("clicks")  # fmt: skip
    first = select(clicks.c.mid, func.min(clicks.c.at).label("at")) \
        .where(clicks.c.mid.is_not(None)).group_by(clicks.c.mid).subquery("first")  # fmt: skip
    statement = _of_message("clicked", first.c.at, now) \
        .select_from(first.join(Message, Message.id == first.c.mid)).where(true())  # fmt: skip
    counts = Counter({"clicked": _insert(conn, statement)})
    _settle(conn, "link_clicks", LinkClick.id, LinkClick.at, start, upto, now)
    return counts


# ----------------------------------------------------------------------------- replies


def _replies(conn: Connection, now: datetime) -> Counter[str]:
    """replied (any MO the inbox attributed to a message) and opted_out (the unsubscribe
    handler handled it); the earliest MO per message wins."""
    from dataclasses import fields

    from jingxin.dispatch.unsubscribe import UnsubscribeHandler

    unsubscribe = next(f.default for f in fields(UnsubscribeHandler) if f.name == "name")
    start, upto = read_mark(conn, "mo_outcomes"), conn.scalar(select(func.max(MoOutcome.id)))
    if upto is None or upto <= start:
        return Counter()
    span = (MoOutcome.id > start, MoOutcome.id <= upto, MoOutcome.message_id.is_not(None))
    o, m = MoOutcome, Message

    def reply(kind: str) -> Any:
        return (select(_key(kind, o.message_id), literal(kind, String), MoMessage.received_at,
                       func.coalesce(m.msisdn, MoMessage.msisdn),
                       func.coalesce(o.tenant_id, m.tenant_id, DEFAULT_TENANT_ID), o.message_id,
                       func.coalesce(o.source, m.source), func.coalesce(o.source_id, m.source_id),
                       func.coalesce(o.campaign_id, m.campaign_id), func.coalesce(o.arm, m.arm),
                       cast(null(), Float), o.handler, _now(now))
                .select_from(o.__table__.join(MoMessage, MoMessage.id == o.mo_id)
                             .outerjoin(m, m.id == o.message_id))
                .where(*span).order_by(MoMessage.received_at, o.id))  # fmt: skip

    counts = Counter({
        "replied": _insert(conn, reply("replied")),
        "opted_out": _insert(conn, reply("opted_out").where(o.handler == unsubscribe,
                                                            o.outcome == "handled")),
    })  # fmt: skip
    _settle(conn, "mo_outcomes", MoOutcome.id, MoOutcome.handled_at, start, upto, now)
    return counts


# ----------------------------------------------------------------------------- hold-outs


def _held_out(conn: Connection, now: datetime) -> Counter[str]:
    """held_out: one per hold-out assignment, one statement per experiment in the range."""
    a = ExperimentAssignment
    start, upto = read_mark(conn, "experiment_assignments"), conn.scalar(select(func.max(a.id)))
    if upto is None or upto <= start:
        return Counter()
    span = (a.id > start, a.id <= upto, a.holdout.is_(True))
    added = 0
    for (experiment,) in conn.execute(select(a.experiment).where(*span).distinct()).all():
        source, source_id, campaign_id = _experiment_source(experiment)
        key = literal("held_out:") + a.experiment + literal(":") + a.msisdn
        added += _insert(conn, select(
            key, literal("held_out", String), a.assigned_at, a.msisdn, a.tenant_id,
            cast(null(), Integer), literal(source, String), literal(source_id, String),
            literal(campaign_id, Integer), a.arm, cast(null(), Float), a.experiment, _now(now),
        ).where(*span, a.experiment == experiment))  # fmt: skip
    _settle(conn, "experiment_assignments", a.id, a.assigned_at, start, upto, now)
    return Counter({"held_out": added})


def _experiment_source(experiment: str) -> tuple[str | None, str | None, int | None]:
    """(source, source id, campaign id) of an experiment's name; a name that is not
    ``<source>:<id>`` gives an unattributed event rather than stopping the collector."""
    source, colon, source_id = experiment.partition(":")
    if not colon or not source or not source_id:
        return None, None, None
    digits = source == "campaign" and source_id.isdigit() and len(source_id) <= 18
    return source, source_id, int(source_id) if digits else None


# ----------------------------------------------------------------------------- attributed


def _complaints(conn: Connection, now: datetime, window: timedelta) -> Counter[str]:
    """complained: each new complaint, attributed to the latest message within the window."""
    c = HallComplaint
    start, upto = read_mark(conn, "hall_complaints"), conn.scalar(select(func.max(c.id)))
    if upto is None or upto <= start:
        return Counter()
    picked = select(c.id, c.msisdn, c.tenant_id, c.at, c.category,
                    _latest_message(c.msisdn, c.at).label("mid")) \
        .where(c.id > start, c.id <= upto).subquery("picked")  # fmt: skip
    m = Message
    rows = conn.execute(
        select(picked, m.submitted_at, m.source, m.source_id, m.campaign_id, m.arm)
        .select_from(picked.outerjoin(m, m.id == picked.c.mid))).all()  # fmt: skip
    events = []
    for row in rows:
        event = {"event_key": f"complained:{row.id}", "kind": "complained", "at": row.at,
                 "msisdn": row.msisdn, "tenant_id": row.tenant_id, "detail": row.category}
        if row.mid is not None and row.at - row.submitted_at <= window:
            event.update(message_id=row.mid, source=row.source, source_id=row.source_id,
                         campaign_id=row.campaign_id, arm=row.arm)  # fmt: skip
        events.append(event)
    added = insert_rows(conn, events, now)
    _settle(conn, "hall_complaints", c.id, c.at, start, upto, now)
    return Counter({"complained": added})


def _orders(conn: Connection, now: datetime, window: timedelta) -> Counter[str]:
    """ordered: each placed order without its event, attributed to the latest message or
    hold-out assignment of the number within the window, whichever is later."""
    o, m, a = BossOrder, Message, ExperimentAssignment
    recorded = exists().where(AnalyticsEvent.event_key == literal("ordered:") + o.boss_ref)
    latest_holdout = select(a.id).where(a.msisdn == o.msisdn, a.holdout.is_(True),
                                        a.assigned_at <= o.at) \
        .order_by(a.assigned_at.desc(), a.id.desc()).limit(1) \
        .correlate(o).scalar_subquery()  # fmt: skip
    picked = select(o.boss_ref, o.msisdn, o.at, o.fee_fen, o.product_id,
                    _latest_message(o.msisdn, o.at).label("mid"), latest_holdout.label("aid")) \
        .where(o.state == "placed", ~recorded).subquery("picked")  # fmt: skip
    rows = conn.execute(
        select(picked, m.submitted_at, m.tenant_id, m.source, m.source_id, m.campaign_id, m.arm,
               a.assigned_at, a.experiment, a.arm.label("holdout_arm"),
               a.tenant_id.label("holdout_tenant"))
        .select_from(picked.outerjoin(m, m.id == picked.c.mid)
                     .outerjoin(a, a.id == picked.c.aid))).all()  # fmt: skip
    events = []
    for row in rows:
        event = {"event_key": f"ordered:{row.boss_ref}", "kind": "ordered", "at": row.at,
                 "msisdn": row.msisdn, "tenant_id": DEFAULT_TENANT_ID,
                 "value": row.fee_fen / 100, "detail": row.product_id}
        message = row.mid is not None and row.at - row.submitted_at <= window
        holdout = row.aid is not None and row.at - row.assigned_at <= window
        if holdout and (not message or row.assigned_at > row.submitted_at):
            source, source_id, campaign_id = _experiment_source(row.experiment)
            event.update(tenant_id=row.holdout_tenant, source=source, source_id=source_id,
                         campaign_id=campaign_id, arm=row.holdout_arm)  # fmt: skip
        elif message:
            event.update(tenant_id=row.tenant_id, message_id=row.mid, source=row.source,
                         source_id=row.source_id, campaign_id=row.campaign_id, arm=row.arm)
        events.append(event)
    return Counter({"ordered": insert_rows(conn, events, now)})


def _latest_message(msisdn: Any, at: Any) -> Any:
    """The id of the latest message sent to ``msisdn`` at or before ``at`` (a correlated
    subquery; the window is checked on its time afterwards: if the latest is too old, so
    is every earlier one)."""
    return (select(Message.id)
            .where(Message.msisdn == msisdn, Message.submitted_at.is_not(None),
                   Message.submitted_at <= at)
            .order_by(Message.submitted_at.desc(), Message.id.desc()).limit(1)
            .scalar_subquery())  # fmt: skip


def insert_rows(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> int:
    """executemany ``INSERT ... ON CONFLICT (event_key) DO NOTHING RETURNING id``."""
    if not rows:
        return 0
    statement = _dialect(conn).insert(EVENTS).on_conflict_do_nothing(
        index_elements=["event_key"]).returning(EVENTS.c.id)  # fmt: skip
    added = 0
    for first in range(0, len(rows), CHUNK):
        chunk = [{**dict.fromkeys(OPTIONAL), **row, "recorded_at": now}
                 for row in rows[first:first + CHUNK]]  # fmt: skip
        added += len(conn.execute(statement, chunk).all())
    return added


def _insert(conn: Connection, query: Any) -> int:
    """``INSERT INTO analytics_events (COLUMNS) <query> ON CONFLICT DO NOTHING``; rows new.
    (SQLite would read an ``ON`` right after a SELECT's join as the join's: every query
    given here ends in a WHERE or an ORDER BY.)"""
    statement = _dialect(conn).insert(EVENTS).from_select(list(COLUMNS), query) \
        .on_conflict_do_nothing(index_elements=["event_key"])  # fmt: skip
    # SQLAlchemy keeps an INSERT's row count only when asked (-1 on psycopg otherwise).
    return conn.execute(statement, execution_options={"preserve_rowcount": True}).rowcount


def _dialect(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def _key(kind: str, message_id: Any) -> Any:
    return literal(f"{kind}:") + cast(message_id, String)


def _now(now: datetime) -> Any:
    return bindparam(None, now, type_=UtcDateTime)


# ----------------------------------------------------------------------------- marks


def read_mark(conn: Connection, name: str) -> int:
    return conn.scalar(select(EventMark.last_id).where(EventMark.name == name)) or 0


def set_mark(conn: Connection, name: str, last_id: int, now: datetime) -> None:
    statement = _dialect(conn).insert(EventMark).values(name=name, last_id=last_id,
                                                        updated_at=now)  # fmt: skip
    conn.execute(statement.on_conflict_do_update(
        index_elements=["name"], set_={"last_id": last_id, "updated_at": now}))


def _settle(conn: Connection, name: str, id_column: Any, at_column: Any, start: int,
            upto: int, now: datetime) -> None:  # fmt: skip
    """Move the mark of an append-only table to ``upto``, or to just below its first row
    read that is younger than :data:`SETTLE` (read again next time)."""
    young = conn.scalar(select(func.min(id_column)).where(
        id_column > start, id_column <= upto, at_column > now - SETTLE))  # fmt: skip
    set_mark(conn, name, upto if young is None else young - 1, now)


# The steps in the order collect runs them: (name, step, takes the attribution window).
Step = Callable[..., Counter[str]]
STEPS: tuple[tuple[str, Step, bool], ...] = (
    ("messages", _messages, False), ("clicks", _clicks, False), ("replies", _replies, False),
    ("hold-outs", _held_out, False), ("complaints", _complaints, True),
    ("orders", _orders, True),
)  # fmt: skip

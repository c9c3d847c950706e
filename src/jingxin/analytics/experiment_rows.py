"""An experiment's rows read once, as Arrow columns: who was assigned, its events by kind,
its orders' values and its messages by state and arm - what :func:`~jingxin.analytics.
metrics.arm_table`, :func:`~jingxin.analytics.metrics.subscriber_outcomes` and a campaign
report's timeline are counted from (:func:`read`).

A database driver hands rows to Python one tuple at a time, about a microsecond a value:
two million events, seconds. So each column of numbers, arms or hours comes back as *one*
string per group, joined in SQL (``group_concat`` on SQLite, ``string_agg`` on PostgreSQL,
with the ASCII unit separator) and split in C. The aggregates of one group are fed the
same rows in the same order, so the columns line up; every joined column is null-free
(coalesced), and the number of pieces is checked against the group's count - a value
containing the separator (which none of these should) is read again row by row.
The events are grouped by kind, which the index on (source, source_id, kind) hands over
in order: no sort. Messages are grouped by state and arm in SQL (a few rows).

The engine's longest string bounds one kind's column: about 60 million events of a kind
per experiment (1 GB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import String, and_, case, cast, func, select

from jingxin.data.store.models import AnalyticsEvent, ExperimentAssignment, Message

SEPARATOR = "\x1f"  # ASCII unit separator: never in a number, an arm or an hour
DEFAULT_ARM = "main"  # a message (or event) without an arm
MESSAGE_COLUMNS = ("state", "arm", "messages", "sent", "parts", "cost", "sent_parts",
                   "sent_cost", "sent_unpriced_parts")  # fmt: skip
MESSAGE_SCHEMA = pa.schema([
    ("state", pa.string()), ("arm", pa.string()), ("messages", pa.int64()),
    ("sent", pa.int64()), ("parts", pa.int64()), ("cost", pa.float64()),
    ("sent_parts", pa.int64()), ("sent_cost", pa.float64()),
    ("sent_unpriced_parts", pa.int64()),
])  # fmt: skip


@dataclass(frozen=True)
class ExperimentRows:
    """What :func:`read` returns.

    - ``assigned``: msisdn, arm, holdout (bool) - one row per assignment;
    - ``events``: per kind, a table of msisdn, arm (``main`` when none) and, when asked
      for, hour (the UTC hour, ``YYYY-MM-DD HH``) - one row per event;
    - ``orders``: msisdn, arm, value (yuan) of the ``ordered`` events;
    - ``messages``: per state and arm (:data:`MESSAGE_SCHEMA`): messages, sent (submitted),
      parts and cost (``messages.cost``) of all, and of the sent: parts, the route's cost,
      and the parts without one (priced at the tariff by whoever counts them). None when
      not asked for."""

    experiment: str
    assigned: pa.Table
    events: dict[str, pa.Table] = field(default_factory=dict)
    orders: pa.Table | None = None
    messages: pa.Table | None = None

    @cached_property
    def numbers(self) -> Numbers:
        """Every number of the assignments and events, coded once (computed on first use)."""
        return Numbers.of(self)


@dataclass(frozen=True)
class Numbers:
    """The distinct numbers of an experiment's rows, each coded by its place in
    ``distinct``: the assigned numbers' codes and each kind's events' codes. Counting
    distinct subscribers and flagging who had an event are then array lookups on the codes
    instead of a hash of the strings per question."""

    distinct: pa.Array
    assigned: np.ndarray
    events: dict[str, np.ndarray]

    @classmethod
    def of(cls, rows: ExperimentRows) -> Numbers:
        kinds = list(rows.events)
        parts = [rows.assigned["msisdn"], *(rows.events[k]["msisdn"] for k in kinds)]
        coded = pc.dictionary_encode(pa.chunked_array(
            [c for part in parts for c in part.chunks], pa.string()).combine_chunks())
        codes = coded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        bounds = np.cumsum([0, *(len(part) for part in parts)])
        return cls(distinct=coded.dictionary, assigned=codes[bounds[0]:bounds[1]],
                   events={k: codes[bounds[i + 1]:bounds[i + 2]] for i, k in enumerate(kinds)})

    def code(self, msisdns: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Codes of other numbers; ``len(distinct)`` for one not among them."""
        found = pc.index_in(msisdns, value_set=self.distinct)
        return pc.fill_null(found, len(self.distinct)).to_numpy(zero_copy_only=False)

    def marked(self, codes: np.ndarray) -> np.ndarray:
        """A flag per code (plus a last, unset one for "not among them"): set for
        ``codes``."""
        flags = np.zeros(len(self.distinct) + 1, dtype=bool)
        flags[codes] = True
        return flags


def read(connection: Any, experiment: str, *, source: str, source_id: str,
         kinds: Sequence[str], messages: Sequence[Any] | None = None,
         hours: bool = False, attribution_days: float = 7.0) -> ExperimentRows:  # fmt: skip
    """The rows of ``experiment`` (``<source>:<source_id>``): its assignments, its events
    of ``kinds`` (with their hour if ``hours``) and, given the WHERE clauses that pick its
    messages, their counts by state and arm.

    Orders of an experiment with assignments are counted by *assignment* (intention to
    treat): every ``ordered`` event of an assigned subscriber within ``attribution_days``
    after the assignment counts for the subscriber's arm, whichever message the event log
    attributed it to (last touch). Otherwise a treated subscriber who also got another
    sender's message later would lose the order to it while the hold-out kept theirs, and
    the comparison would be biased against the treated. Clicks, replies, opt-outs and
    complaints answer a message, so they stay with the message's experiment."""
    from jingxin.analytics.metrics import of_experiment

    e = AnalyticsEvent
    mine = (of_experiment(e, source, source_id), e.kind.in_(kinds))
    assigned = _assigned(connection, experiment)
    events = _events(connection, mine, hours=hours)
    orders = _orders(connection, mine)
    if assigned.num_rows and "ordered" in kinds:
        orders, by_assignment = _assigned_orders(connection, experiment, hours=hours,
                                                 days=attribution_days)  # fmt: skip
        events["ordered"] = by_assignment
    return ExperimentRows(
        experiment=experiment,
        assigned=assigned,
        events=events,
        orders=orders,
        messages=None if messages is None else _messages(connection, messages),
    )


# ----------------------------------------------------------------------------- reading


def _assigned(connection: Any, experiment: str) -> pa.Table:
    a = ExperimentAssignment
    columns = _joined(connection, [a.msisdn, a.arm, a.holdout], a.experiment == experiment,
                      names=("msisdn", "arm", "holdout"))  # fmt: skip
    # 1/0 as SQLite keeps booleans, true/false as PostgreSQL writes them as text
    flags = pc.is_in(columns["holdout"], value_set=pa.array(["1", "true"]))
    return pa.table({"msisdn": columns["msisdn"], "arm": columns["arm"], "holdout": flags})


def _events(connection: Any, where: tuple[Any, ...], *, hours: bool) -> dict[str, pa.Table]:
    e = AnalyticsEvent
    columns = [e.msisdn, func.coalesce(e.arm, DEFAULT_ARM)]
    names: tuple[str, ...] = ("msisdn", "arm")
    if hours:
        columns.append(_hour(connection.dialect.name, e.at))
        names += ("hour",)
    by_kind = _joined_by(connection, columns, where, group=e.kind, names=names)
    return {kind: pa.table(values) for kind, values in by_kind.items()}


def _orders(connection: Any, where: tuple[Any, ...]) -> pa.Table:
    e = AnalyticsEvent
    rows = connection.execute(
        select(e.msisdn, func.coalesce(e.arm, DEFAULT_ARM), e.value)
        .where(*where, e.kind == "ordered")).cursor.fetchall()  # fmt: skip
    values = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return pa.table({"msisdn": pa.array(values[0], pa.string()),
                     "arm": pa.array(values[1], pa.string()),
                     "value": pa.array(values[2], pa.float64())})


def _assigned_orders(connection: Any, experiment: str, *, hours: bool,
                     days: float) -> tuple[pa.Table, pa.Table]:  # fmt: skip
    """(orders: msisdn, arm, value; events: msisdn, arm [, hour]) of the ``ordered`` events
    of the experiment's assigned subscribers from their assignment to ``days`` after, under
    their assigned arm (:func:`read`)."""
    from datetime import timedelta

    e, a = AnalyticsEvent, ExperimentAssignment
    columns = [e.msisdn, a.arm, e.value, e.at, a.assigned_at]
    if hours:
        columns.append(_hour(connection.dialect.name, e.at))
    rows = connection.execute(
        select(*columns)
        .join(a, and_(a.msisdn == e.msisdn, a.experiment == experiment))
        .where(e.kind == "ordered", e.at >= a.assigned_at)).all()  # fmt: skip
    window = timedelta(days=days)
    kept = [r for r in rows if r[3] <= r[4] + window]
    orders = pa.table({"msisdn": pa.array([r[0] for r in kept], pa.string()),
                       "arm": pa.array([r[1] for r in kept], pa.string()),
                       "value": pa.array([r[2] for r in kept], pa.float64())})
    events = orders.select(["msisdn", "arm"])
    if hours:
        events = events.append_column("hour", pa.array([r[5] for r in kept], pa.string()))
    return orders, events


def _messages(connection: Any, where: Sequence[Any]) -> pa.Table:
    """The messages by state and arm: one grouped query (a few rows)."""
    m = Message
    arm = func.coalesce(m.arm, DEFAULT_ARM)
    sent = m.submitted_at.is_not(None)
    rows = connection.execute(
        select(m.state, arm, func.count(), func.count(m.submitted_at), func.sum(m.parts),
               func.sum(m.cost),
               func.sum(case((sent, m.parts), else_=0)),
               func.sum(case((sent, func.coalesce(m.cost, 0.0)), else_=0.0)),
               func.sum(case((sent & m.cost.is_(None), m.parts), else_=0)))
        .where(*where).group_by(m.state, arm).order_by(m.state, arm)).all()  # fmt: skip
    values = list(zip(*rows, strict=True)) if rows else [()] * len(MESSAGE_COLUMNS)
    return pa.table([pa.array(list(v), f.type) for v, f in zip(values, MESSAGE_SCHEMA,
                                                               strict=True)],
                    schema=MESSAGE_SCHEMA)  # fmt: skip


def _hour(dialect: str, column: Any) -> Any:
    """The UTC hour of an instant as ``YYYY-MM-DD HH`` text (SQLite keeps UTC text)."""
    if dialect == "sqlite":  # 'YYYY-MM-DD HH:MM:SS.ffffff': cutting beats parsing
        return func.substr(column, 1, 13, type_=String)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24", type_=String)


# ----------------------------------------------------------------------------- joined


def _joined(connection: Any, columns: list[Any], where: Any, *,
            names: tuple[str, ...]) -> dict[str, pa.Array]:  # fmt: skip
    """The ``columns`` of the rows ``where`` picks, each read as one joined string."""
    query = select(func.count(), *(_agg(connection, c) for c in columns)).where(where)
    count, *joined = connection.execute(query).one()
    values = _split(joined, count)
    if values is None:  # a separator inside a value: row by row
        values = _rows(connection, columns, (where,))
    return {name: pa.array(v, pa.string()) for name, v in zip(names, values, strict=True)}


def _joined_by(connection: Any, columns: list[Any], where: tuple[Any, ...], *, group: Any,
               names: tuple[str, ...]) -> dict[str, dict[str, pa.Array]]:  # fmt: skip
    """As :func:`_joined`, per value of ``group``."""
    query = select(group, func.count(), *(_agg(connection, c) for c in columns)).where(*where) \
        .group_by(group).order_by(group)  # fmt: skip
    out = {}
    for key, count, *joined in connection.execute(query).all():
        values = _split(joined, count)
        if values is None:
            values = _rows(connection, columns, (*where, group == key))
        out[key] = {name: pa.array(v, pa.string()) for name, v in zip(names, values,
                                                                          strict=True)}
    return out


def _rows(connection: Any, columns: list[Any], where: tuple[Any, ...]) -> list[list[str]]:
    """The columns as text, row by row (the way round a value holding the separator)."""
    query = select(*(cast(c, String) for c in columns)).where(*where)
    rows = connection.execute(query).cursor.fetchall()
    return [list(v) for v in zip(*rows, strict=True)] if rows else [[] for _ in columns]


def _agg(connection: Any, column: Any) -> Any:
    """The column joined into one string (PostgreSQL joins only text; SQLite any value,
    and a cast would cost it a tenth of a second a million rows)."""
    if connection.dialect.name != "sqlite":
        column = cast(column, String)
    return func.aggregate_strings(column, SEPARATOR)


def _split(joined: list[str | None], count: int) -> list[list[str]] | None:
    """Each joined string as its pieces; None if a column does not have ``count``."""
    if not count:
        return [[] for _ in joined]
    values = [(text or "").split(SEPARATOR) for text in joined]
    return values if all(len(v) == count for v in values) else None


__all__ = ["DEFAULT_ARM", "MESSAGE_SCHEMA", "SEPARATOR", "ExperimentRows", "Numbers", "read"]

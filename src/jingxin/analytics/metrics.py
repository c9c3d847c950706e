"""Per-arm metrics of an experiment, counted from the event log (issue #16).

An experiment is named ``<source>:<source id>`` (``campaign:12``, ``journey:welcome``,
``fence:SH-PVG``); a journey's messages and events carry its steps' ids (``welcome:day1``)
and count for ``journey:welcome`` (:func:`of_experiment`). Its arms are those of
``experiment_assignments`` (who was *assigned*, hold-out included), plus any arm seen
only in the outbox (a campaign sent before it had assignments: its numbers count as
assigned to the arm of their message; a message without an arm is in arm ``main``).

- :func:`arm_table`: one row per arm: ``assigned`` and, per event kind, the DISTINCT
  subscribers it happened to; ``value`` (orders, yuan), ``parts`` and ``cost`` of what was
  sent. Treated arms by name, then the hold-out.
- :func:`subscriber_outcomes`: one row per subscriber of the experiment, a flag per kind:
  what :mod:`jingxin.analytics.stats` and uplift models take.

Both read ``analytics_events``: call :func:`jingxin.analytics.events.collect` first. Each
reads the experiment's assignments and events once, as Arrow columns
(:mod:`jingxin.analytics.experiment_rows`: a few queries whatever the audience, no row by
row in Python), and counts in Arrow; the messages are grouped by state and arm in SQL. A
caller that wants both (a report) reads the rows once with :func:`experiment_rows` and
hands them to each (``rows=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import and_, distinct, exists, func, or_, select

from jingxin.analytics import experiment_rows as experiment_rows_module
from jingxin.analytics.experiment_rows import DEFAULT_ARM, ExperimentRows
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import ExperimentAssignment, Message
from jingxin.errors import InputError

HOLDOUT = "holdout"
# Kinds counted as distinct subscribers per arm, in the order of the table's columns.
ARM_KINDS = ("sent", "delivered", "failed", "clicked", "replied", "ordered", "opted_out",
             "complained")  # fmt: skip
SUBSCRIBER_KINDS = ("sent", "delivered", "clicked", "replied", "ordered", "opted_out",
                    "complained")  # fmt: skip

ARM_SCHEMA = pa.schema(
    [("arm", pa.string()), ("holdout", pa.bool_()), ("assigned", pa.int64())]
    + [(kind, pa.int64()) for kind in ARM_KINDS]
    + [("value", pa.float64()), ("parts", pa.int64()), ("cost", pa.float64())]
)
SUBSCRIBER_SCHEMA = pa.schema(
    [("msisdn", pa.string()), ("arm", pa.string()), ("holdout", pa.bool_())]
    + [(kind, pa.bool_()) for kind in SUBSCRIBER_KINDS]
    + [("value", pa.float64())]
)


def split_experiment(experiment: str) -> tuple[str, str]:
    """``"campaign:12"`` as ``("campaign", "12")`` (split on the first ``:``); a name
    without both halves is an InputError naming it."""
    source, colon, source_id = experiment.partition(":")
    if not colon or not source.strip() or not source_id.strip():
        raise InputError(f"experiment {experiment!r}: expected <source>:<source id>, e.g. "
                         "campaign:12, journey:welcome or fence:SH-PVG")  # fmt: skip
    return source, source_id


def experiment_rows(store: Store, experiment: str, *, hours: bool = False,
                    attribution_days: float = 7.0) -> ExperimentRows:
    """The rows of ``experiment`` read once (:mod:`jingxin.analytics.experiment_rows`):
    assignments, events of :data:`ARM_KINDS` (with their UTC hour if ``hours``), orders
    and messages by state and arm - for :func:`arm_table` and :func:`subscriber_outcomes`
    (``rows=``) when both are wanted, as a report wants them."""
    source, source_id = split_experiment(experiment)
    with store_errors(f"reading the rows of experiment {experiment}"), \
            store.engine.connect() as connection:  # fmt: skip
        return experiment_rows_module.read(
            connection, experiment, source=source, source_id=source_id, kinds=ARM_KINDS,
            messages=_messages_of(source, source_id), hours=hours,
            attribution_days=attribution_days)  # fmt: skip


def arm_table(store: Store, experiment: str, *, tariff: float = 0.05,
              rows: ExperimentRows | None = None,
              attribution_days: float = 7.0) -> pa.Table:  # fmt: skip
    """One row per arm of ``experiment`` (:data:`ARM_SCHEMA`): ``assigned``, distinct
    subscribers per event kind, order ``value`` (yuan), ``parts`` sent and their ``cost``
    (``messages.cost``, else parts × ``tariff`` yuan). An unknown experiment is an
    InputError naming it; an experiment without events has zeros. ``rows``: the
    experiment's rows already read (:func:`experiment_rows`)."""
    source, source_id = split_experiment(experiment)
    if rows is None or rows.messages is None:
        rows = experiment_rows(store, experiment, attribution_days=attribution_days)
    assert rows.messages is not None
    if not rows.assigned.num_rows and not rows.messages.num_rows:
        raise InputError(f"experiment {experiment}: no assignments and no messages: "
                         "unknown experiment (check the name, e.g. campaign:12)")  # fmt: skip
    assigned = rows.assigned.group_by("arm", use_threads=False).aggregate(
        [("holdout", "any"), ("holdout", "count")]).to_pylist()  # fmt: skip
    known = {row["arm"] for row in assigned}
    messaged = rows.messages.group_by("arm", use_threads=False).aggregate(
        [("sent_parts", "sum"), ("sent_cost", "sum"), ("sent_unpriced_parts", "sum")])
    unassigned = sorted(set(messaged["arm"].to_pylist()) - known)
    numbers = _numbers_messaged(store, experiment, source, source_id, unassigned)
    table: dict[str, dict[str, Any]] = {}
    for row in assigned:
        table[row["arm"]] = _empty_arm(row["arm"], bool(row["holdout_any"])
                                       or row["arm"] == HOLDOUT, row["holdout_count"])
    for row in messaged.to_pylist():
        arm = row["arm"]
        entry = table.setdefault(arm, _empty_arm(arm, arm == HOLDOUT, numbers.get(arm, 0)))
        entry["parts"] = int(row["sent_parts_sum"] or 0)
        entry["cost"] = float(row["sent_cost_sum"] or 0.0) \
            + tariff * int(row["sent_unpriced_parts_sum"] or 0)  # fmt: skip
    for kind, arm, subscribers in _distinct_by_arm(rows):
        # An event in an arm neither assigned nor messaged (a late reply to a message since
        # deleted, say) still counts: the arm shows, with nobody assigned.
        table.setdefault(arm, _empty_arm(arm, arm == HOLDOUT, 0))[kind] = subscribers
    values = _values(rows.orders, "arm")
    for arm, value in values.items():
        table.setdefault(arm, _empty_arm(arm, arm == HOLDOUT, 0))["value"] = value
    ordered = sorted(table.values(), key=lambda r: (r["holdout"], r["arm"]))
    return pa.Table.from_pylist(ordered, schema=ARM_SCHEMA)


def _distinct_by_arm(rows: ExperimentRows) -> list[tuple[str, str, int]]:
    """(kind, arm, distinct subscribers) of the events, counted on the numbers' codes."""
    out = []
    for kind in ARM_KINDS:
        events = rows.events.get(kind)
        if events is None or not events.num_rows:
            continue
        codes = rows.numbers.events[kind]
        arms = pc.dictionary_encode(events["arm"].combine_chunks())
        which = arms.indices.to_numpy(zero_copy_only=False)
        for i, arm in enumerate(arms.dictionary.to_pylist()):
            marked = rows.numbers.marked(codes[which == i])
            out.append((kind, arm, int(np.count_nonzero(marked))))
    return out


def _numbers_messaged(store: Store, experiment: str, source: str, source_id: str,
                      arms: list[str]) -> dict[str, int]:  # fmt: skip
    """Distinct numbers messaged per arm, for the ``arms`` without assignments (a campaign
    sent before it had them): what counts as assigned there."""
    if not arms:
        return {}
    arm = func.coalesce(Message.arm, DEFAULT_ARM)
    with store_errors(f"counting the numbers messaged in experiment {experiment}"), \
            store.engine.connect() as connection:  # fmt: skip
        rows = connection.execute(
            select(arm, func.count(distinct(Message.msisdn)))
            .where(*_messages_of(source, source_id), arm.in_(arms)).group_by(arm)).all()
    return {name: int(n) for name, n in rows}


def _values(orders: pa.Table | None, by: str) -> dict[str, float]:
    """The orders' value summed by ``by`` (arm or msisdn)."""
    if orders is None or not orders.num_rows:
        return {}
    summed = orders.group_by(by, use_threads=False).aggregate([("value", "sum")])
    return {key: float(v or 0.0) for key, v in zip(
        summed[by].to_pylist(), summed["value_sum"].to_pylist(), strict=True)}


def _empty_arm(arm: str, holdout: bool, assigned: int) -> dict[str, Any]:
    return {"arm": arm, "holdout": holdout, "assigned": int(assigned),
            **dict.fromkeys(ARM_KINDS, 0), "value": 0.0, "parts": 0, "cost": 0.0}  # fmt: skip


def subscriber_outcomes(store: Store, experiment: str, *, rows: ExperimentRows | None = None,
                        attribution_days: float = 7.0) -> pa.Table:  # fmt: skip
    """One row per subscriber of ``experiment`` (:data:`SUBSCRIBER_SCHEMA`), by arm and
    number: the assigned, plus the numbers messaged in an arm that has no assignments; a
    flag per event kind and the ``value`` of their orders (yuan). An unknown experiment is
    an InputError naming it. ``rows``: the experiment's rows already read
    (:func:`experiment_rows`).

    The rows are read as columns and pivoted in Arrow: on SQLite a GROUP BY per number
    sorts in a temporary B-tree and took twice as long as reading the rows."""
    source, source_id = split_experiment(experiment)
    a = ExperimentAssignment
    arm = func.coalesce(Message.arm, DEFAULT_ARM)
    with store_errors(f"reading the subscribers of experiment {experiment}"), \
            store.engine.connect() as connection:  # fmt: skip
        if rows is None:
            rows = experiment_rows_module.read(
                connection, experiment, source=source, source_id=source_id,
                kinds=SUBSCRIBER_KINDS, attribution_days=attribution_days)  # fmt: skip
        known = set(rows.assigned["arm"].to_pylist())
        if rows.messages is not None and set(rows.messages["arm"].to_pylist()) <= known:
            messaged: list[tuple[Any, ...]] = [(), ()]  # every arm messaged has assignments
        else:
            assigned_arms = select(a.arm).where(a.experiment == experiment)
            messaged = _columns(connection, select(Message.msisdn, arm).where(
                *_messages_of(source, source_id), arm.not_in(assigned_arms)), 2)  # fmt: skip
        if not rows.assigned.num_rows and not messaged[0] and not (
                rows.messages.num_rows if rows.messages is not None
                else _known(connection, experiment, source, source_id)):  # fmt: skip
            raise InputError(f"experiment {experiment}: no assignments and no messages: "
                             "unknown experiment (check the name, e.g. campaign:12)")  # fmt: skip
    return _pivot(_people(rows.assigned, messaged), rows)


def _columns(connection: Any, query: Any, width: int) -> list[tuple[Any, ...]]:
    """The query's rows as ``width`` columns, fetched from the driver's cursor (plain
    strings and numbers: no per-value conversion)."""
    rows = connection.execute(query).cursor.fetchall()
    return list(zip(*rows, strict=True)) if rows else [()] * width


def _people(assigned: pa.Table, messaged: list[tuple[Any, ...]]) -> pa.Table:
    """Assigned numbers, then messaged-only numbers (one row each: their first arm)."""
    numbers = assigned.select(["msisdn", "arm", "holdout"])
    if messaged[0]:
        extra = pa.table({"msisdn": pa.array(messaged[0], pa.string()),
                          "arm": pa.array(messaged[1], pa.string())})
        extra = extra.group_by("msisdn", use_threads=False).aggregate([("arm", "min")]) \
            .rename_columns(["msisdn", "arm"])  # fmt: skip
        extra = extra.append_column("holdout", pc.equal(extra["arm"], HOLDOUT))
        numbers = pa.concat_tables([numbers, extra.select(numbers.column_names)])
    holdout = pc.or_(numbers["holdout"], pc.equal(numbers["arm"], HOLDOUT))
    return numbers.set_column(2, "holdout", holdout)


def _pivot(people: pa.Table, rows: ExperimentRows) -> pa.Table:
    """``people`` with a flag per kind (an event of that kind for the number) and the sum
    of its order values, sorted by arm and number."""
    columns = {"msisdn": people["msisdn"], "arm": people["arm"], "holdout": people["holdout"]}
    numbers = rows.numbers
    codes = numbers.assigned
    if people.num_rows > len(codes):  # the numbers messaged only, after the assigned
        codes = np.concatenate([codes, numbers.code(people["msisdn"].slice(len(codes)))])
    for kind in SUBSCRIBER_KINDS:
        events = numbers.events.get(kind)
        if events is None or not len(events):
            columns[kind] = pa.array(np.zeros(people.num_rows, dtype=bool))
        else:
            columns[kind] = pa.array(numbers.marked(events)[codes])
    orders = rows.orders
    if orders is not None and orders.num_rows:
        totals = orders.group_by("msisdn", use_threads=False).aggregate([("value", "sum")])
        at = pc.index_in(people["msisdn"], value_set=totals["msisdn"])
        value = pc.take(pc.fill_null(totals["value_sum"], 0.0), at)
        columns["value"] = pc.fill_null(value, 0.0)
    else:
        columns["value"] = pa.array(np.zeros(people.num_rows))
    table = pa.table(columns).cast(SUBSCRIBER_SCHEMA)
    return table.sort_by([("arm", "ascending"), ("msisdn", "ascending")])


def of_experiment(table: Any, source: str, source_id: str) -> Any:
    """The rows of ``table`` (messages, events, MO outcomes: any with ``source`` and
    ``source_id``) that belong to the experiment ``<source>:<source_id>``. A journey's
    messages are its steps, ``<flow>:<step>``, so for a source other than a campaign the
    ids under ``<source_id>:`` belong to it too."""
    mine = table.source_id == source_id
    if source != "campaign":
        mine = or_(mine, table.source_id.startswith(f"{source_id}:", autoescape=True))
    return and_(table.source == source, mine)


def _messages_of(source: str, source_id: str) -> list[Any]:
    """The outbox's rows of one experiment; a campaign's by its (indexed) campaign id."""
    where = [of_experiment(Message, source, source_id)]
    if source == "campaign" and source_id.isdigit() and len(source_id) <= 18:
        where.append(Message.campaign_id == int(source_id))
    return where


def _known(connection: Any, experiment: str, source: str, source_id: str) -> bool:
    assigned = exists().where(ExperimentAssignment.experiment == experiment)
    messaged = exists().where(and_(*_messages_of(source, source_id)))
    return bool(connection.execute(select(assigned | messaged)).scalar())


__all__ = ["ARM_KINDS", "ARM_SCHEMA", "DEFAULT_ARM", "SUBSCRIBER_KINDS", "SUBSCRIBER_SCHEMA",
           "ExperimentRows", "arm_table", "experiment_rows", "of_experiment", "split_experiment",
           "subscriber_outcomes"]

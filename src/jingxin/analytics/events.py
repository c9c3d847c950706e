"""The event log: what happened to each message and subscriber, once (``analytics_events``).

:func:`collect` reads the operational tables and appends what is new, in set-based SQL
(``INSERT ... SELECT ... ON CONFLICT (event_key) DO NOTHING``), so a million messages take
seconds. Every event has a key, and appending one already there does nothing: collecting
twice adds nothing, two collectors at once are safe.

==========  ===========================  =========================  ======================
kind        from                         at                         event_key
==========  ===========================  =========================  ======================
sent        messages, submitted          ``submitted_at``           ``sent:<message id>``
delivered   messages, state delivered    ``finished_at``            ``delivered:<id>``
failed      messages, other final state  ``finished_at``            ``failed:<id>``
clicked     link_clicks, first non-bot   the click                  ``clicked:<id>``
replied     mo_outcomes with a message   the MO's ``received_at``   ``replied:<id>``
opted_out   the same, unsubscribe        the MO's ``received_at``   ``opted_out:<id>``
complained  hall_complaints              the complaint              ``complained:<id>``
ordered     boss_orders, state placed    the order                  ``ordered:<boss_ref>``
held_out    hold-out assignments         ``assigned_at``            ``held_out:<exp>:<n>``
==========  ===========================  =========================  ======================

A message cancelled before it was sent (error ``cancelled``) is no failure and has none.
Complaints are attributed to the latest message sent to that number within the window,
orders to the latest message *or hold-out assignment* (whichever is later): the event
copies its source, source id, campaign and arm; with neither the event is unattributed
(source NULL) and still counted.

How far it has read (``event_marks``, crash-safe: a step's events and its mark commit in
one transaction; a crash re-reads, and re-reading adds nothing):

- Append-only tables (``link_clicks``, ``mo_outcomes``, ``hall_complaints``,
  ``experiment_assignments``): the last id read. A step reads the ids up to the largest
  it saw first, and moves its mark past a row only once the row's own time is older than
  :data:`SETTLE`: on PostgreSQL an id is taken at insert and visible at commit, so a row
  of a transaction still open could appear behind the mark; recent rows are re-read
  instead, harmlessly. (The one gap: a transaction open longer than :data:`SETTLE` whose
  rows' times were already older than that.)
- ``messages`` change state, so its mark is the id below the oldest message that is not
  final yet: every message at or above it is re-read until it has its final event (a
  receipt arriving after a collect gives ``delivered`` on the next one). No clocks are
  compared but the settle margin on new rows; the cost of the re-read is the messages
  since the oldest unfinished one (index probes that insert nothing, seconds a million;
  a message left queued for days keeps that range open until it ends).
- ``boss_orders`` has no id to follow: every placed order without its event is taken
  (an anti-join on the event key; orders are few beside messages).

:func:`record_events` appends rows given by hand (other collectors, tests);
:func:`to_warehouse` copies the log to the warehouse table ``events`` for reports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from jingxin.analytics.event_sources import COLUMNS, OPTIONAL, REQUIRED, SETTLE, STEPS, insert_rows
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import EVENT_KINDS, AnalyticsEvent, utc_now
from jingxin.errors import InputError, WarehouseError

WAREHOUSE_TABLE = "events"
WAREHOUSE_ZONE = "Asia/Shanghai"  # warehouse event times: China Standard Time, naive


def collect(store: Store, *, now: datetime | None = None,
            attribution_days: float = 7.0) -> Counter[str]:  # fmt: skip
    """Append every event not yet in the log; the count of new events per kind.

    ``now`` is when the events are recorded and what the settle margin is measured
    from; ``attribution_days`` the window within which an order or a complaint counts
    for the message (or hold-out) before it."""
    if not isinstance(attribution_days, int | float) or isinstance(attribution_days, bool) \
            or not math.isfinite(attribution_days) or attribution_days <= 0:  # fmt: skip
        raise InputError(f"analytics.attribution_days: {attribution_days!r} is not a positive "
                         "number of days")  # fmt: skip
    now = now or utc_now()
    if now.tzinfo is None:
        raise InputError(f"collect: now {now.isoformat()} has no time zone")
    window = timedelta(days=attribution_days)
    counts: Counter[str] = Counter()
    for name, step, attributed in STEPS:
        with store_errors(f"collecting events ({name})"), store.transaction() as session:
            args = (window,) if attributed else ()
            counts.update(step(session.connection(), now, *args))
    return +counts


# ----------------------------------------------------------------------------- writing


def record_events(store: Store, rows: Sequence[Mapping[str, Any]]) -> int:
    """Append ``rows`` (mappings with :data:`REQUIRED` and any of :data:`OPTIONAL`), each
    skipped if its ``event_key`` is in the log already; returns how many were new. Every
    row is checked first: any bad one is an InputError naming it, and nothing is written."""
    checked = [_checked(row, index) for index, row in enumerate(rows)]
    problems = [p for p in checked if isinstance(p, str)]
    if problems:
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InputError(f"{len(problems)} bad event row(s), nothing recorded:\n"
                         + "\n".join(problems[:10]) + more)  # fmt: skip
    with store_errors(f"recording {len(checked)} events"), store.transaction() as session:
        return insert_rows(session.connection(), checked, utc_now())


def _checked(row: Mapping[str, Any], index: int) -> dict[str, Any] | str:
    """The row as the table's columns, or a line saying what is wrong with it."""
    where = f"row {index}" + (f" ({row['event_key']})" if row.get("event_key") else "")
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        return f"{where}: unknown field(s) {', '.join(unknown)}"
    for name in REQUIRED:
        if row.get(name) in (None, ""):
            return f"{where}: {name} is missing"
    if row["kind"] not in EVENT_KINDS:
        return f"{where}: kind {row['kind']!r} is not one of {', '.join(EVENT_KINDS)}"
    at = row["at"]
    if not isinstance(at, datetime) or at.tzinfo is None:
        return f"{where}: at {at!r} is not a datetime with a time zone"
    if len(str(row["event_key"])) > 200:
        return f"{where}: event_key is longer than 200 characters"
    return {name: row.get(name) for name in COLUMNS if name != "recorded_at"}


# ----------------------------------------------------------------------------- warehouse

WAREHOUSE_SCHEMA = pa.schema([
    ("event_key", pa.string()), ("kind", pa.string()), ("at", pa.timestamp("us")),
    ("msisdn", pa.string()), ("tenant_id", pa.string()), ("message_id", pa.int64()),
    ("source", pa.string()), ("source_id", pa.string()), ("campaign_id", pa.int64()),
    ("arm", pa.string()), ("value", pa.float64()), ("detail", pa.string()),
    ("at_utc", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


def to_warehouse(store: Store, con: Any) -> int:
    """Replace the warehouse table ``events`` with the whole log (:data:`WAREHOUSE_SCHEMA`;
    ``at`` in China Standard Time, naive, as the warehouse keeps event times; ``at_utc``
    the same instant in UTC); returns its rows. ``con`` is a Warehouse or its Ibis
    backend."""
    from jingxin.data.warehouse.connection import Warehouse

    backend = con.con if isinstance(con, Warehouse) else con
    table = events_table(store)
    try:
        backend.create_table(WAREHOUSE_TABLE, table, overwrite=True)
    except Exception as exc:  # each backend raises its own
        raise WarehouseError(f"cannot write warehouse table {WAREHOUSE_TABLE!r}: {exc}") from exc
    return table.num_rows


def events_table(store: Store, *, batch: int = 100_000) -> pa.Table:
    """The whole log as Arrow (:data:`WAREHOUSE_SCHEMA`), read in batches of ``batch``."""
    e = AnalyticsEvent
    names = [f.name for f in WAREHOUSE_SCHEMA if f.name != "at_utc"]
    columns = [getattr(e, name) for name in names]
    batches = []
    with store_errors("reading the event log"), store.engine.connect() as connection:
        result = connection.execution_options(yield_per=batch).execute(
            select(*columns).order_by(e.id))  # fmt: skip
        for rows in result.partitions():
            batches.append(_batch(names, rows))
    if not batches:
        return WAREHOUSE_SCHEMA.empty_table()
    return pa.concat_tables(batches)


def _batch(names: list[str], rows: Sequence[Any]) -> pa.Table:
    values = dict(zip(names, zip(*rows, strict=True), strict=True))
    utc = pa.array(values["at"], pa.timestamp("us", tz="UTC"))
    local = pc.local_timestamp(utc.cast(pa.timestamp("us", tz=WAREHOUSE_ZONE)))
    arrays = {name: pa.array(values[name], WAREHOUSE_SCHEMA.field(name).type)
              for name in names if name != "at"}  # fmt: skip
    arrays["at"], arrays["at_utc"] = local, utc
    return pa.table([arrays[f.name] for f in WAREHOUSE_SCHEMA], schema=WAREHOUSE_SCHEMA)


__all__ = ["COLUMNS", "OPTIONAL", "REQUIRED", "SETTLE", "WAREHOUSE_SCHEMA", "collect",
           "events_table", "record_events", "to_warehouse"]

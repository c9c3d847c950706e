"""The outbox's one insert path: rows become queued ``messages`` rows.

:func:`insert_table` takes an Arrow table (a campaign chunk) or a few rows as mappings (the
single-message path: no table is built for one row; :func:`insert_rows` gives their ids
by key), fills the defaults (lane from
category, state ``queued``, the send and expiry instants, counters), checks every row (an
error names it) and inserts in the caller's transaction, skipping idempotency keys already
there. Many rows go in bulk (:func:`jingxin.data.store.bulk.insert_new`: COPY into a
temporary table and one ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL,
``executemany`` on SQLite); a few go as one ``INSERT ... ON CONFLICT DO NOTHING RETURNING
id``, which also says which rows were new. Crash safety is the caller's transaction's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from jingxin.data.store.models import LANES, REPLY_LANE, REPLY_SOURCES, Message, lane_of
from jingxin.errors import InputError

DEFAULT_VALIDITY = timedelta(hours=24)
COLUMNS = (
    "tenant_id", "campaign_id", "msisdn", "category", "lane", "text", "parts", "channel",
    "idempotency_key", "state", "scheduled_at", "created_at", "updated_at", "cost",
    "attempts", "unresolved", "expires_at", "source", "source_id", "sender", "arm",
    "link_token", "link_url",
)  # fmt: skip
# At most this many rows go as one INSERT ... RETURNING (the single-message path).
FEW = 64


def insert_table(connection, *, table: pa.Table | Sequence[Mapping[str, Any]], now: datetime,
                 first: int = 0) -> list[int]:  # fmt: skip
    """Insert rows as queued messages in the caller's transaction, skipping idempotency
    keys already there: THE insert path of the outbox. ``table`` is an Arrow table (a
    campaign chunk) or a few rows as mappings with the same fields (the single-message
    path: no table is built for one row). More than :data:`FEW` rows go in bulk and give
    one 0 per new row; a few go as one ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``
    (SQLite >= 3.35 and PostgreSQL alike) and give the new rows' ids."""
    from jingxin.data.store import bulk

    if isinstance(table, pa.Table):
        if table.num_rows > FEW:
            rows = _table_columns(table, now=now, first=first)
            return [0] * bulk.insert_new(connection, into="messages", table=rows)
        table = _few_rows(table)
    return list(insert_rows(connection, rows=table, now=now, first=first).values())


def insert_rows(connection, *, rows: Sequence[Mapping[str, Any]], now: datetime,
                first: int = 0) -> dict[str, int]:  # fmt: skip
    """Rows as mappings (a few, or a small batch of the delivery entry's ``deliver_many``)
    as one multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING id, idempotency_key``:
    the new rows' ids by key (a key already there is left out)."""
    values = [row_values(row, now=now, number=first + i + 1) for i, row in enumerate(rows)]
    if not values:
        return {}
    statement = insert_statement(connection.dialect.name)
    found = connection.execute(statement, values[0] if len(values) == 1 else values)
    return {key: message_id for message_id, key in found}


def _few_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A small table as row mappings; its instants must carry a time zone, as in bulk."""
    from jingxin.data.store import bulk

    for name in ("category", "text", "tenant_id"):
        if name not in table.column_names:
            raise InputError(f"outbox table: no column {name!r}")
    for name in ("scheduled_at", "expires_at"):
        bulk.instant_column(table, name)  # refuses a column without a time zone
    return table.to_pylist()


def row_values(row: Mapping[str, Any], *, now: datetime, number: int = 1) -> dict[str, Any]:
    """The stored values of one row (``COLUMNS``), defaults filled in as
    :func:`_table_columns` fills them; a bad row is an InputError naming it."""
    key = row.get("idempotency_key")
    if not row.get("msisdn") or not key:
        raise InputError(f"outbox entry #{number}: msisdn and idempotency_key are required")
    category = row.get("category")
    if category not in LANES:
        raise InputError(f"outbox entry #{number} ({key}): unknown category {category!r} "
                         f"(use {', '.join(LANES)})")  # fmt: skip
    for name in ("text", "tenant_id"):
        if row.get(name) is None:
            raise InputError(f"outbox entry #{number} ({key}): {name} is required")
    scheduled, expires = row.get("scheduled_at") or now, row.get("expires_at")
    for name, moment in (("scheduled_at", scheduled), ("expires_at", expires)):
        if moment is not None and moment.tzinfo is None:
            raise InputError(f"outbox entry #{number} ({key}): {name} has no time zone")
    parts = row.get("parts")
    return {
        "tenant_id": row["tenant_id"], "campaign_id": row.get("campaign_id"),
        "msisdn": row["msisdn"], "category": category, "lane": lane_of(category, row.get("source")),
        "text": row["text"], "parts": 1 if parts is None else parts,
        "channel": row.get("channel"), "idempotency_key": key, "state": "queued",
        "scheduled_at": scheduled, "created_at": now, "updated_at": now,
        "cost": row.get("cost"), "attempts": 0, "unresolved": 0,
        "expires_at": expires if expires is not None else scheduled + DEFAULT_VALIDITY,
        "source": row.get("source") or "api", "source_id": row.get("source_id"),
        "sender": row.get("sender"), "arm": row.get("arm"),
        "link_token": row.get("link_token"), "link_url": row.get("link_url"),
    }  # fmt: skip


@functools.cache
def insert_statement(dialect: str, *, prefix: str | None = None):
    """THE insert of rows as mappings (:func:`row_values`): ``INSERT ... ON CONFLICT
    (idempotency_key) DO NOTHING RETURNING id, idempotency_key``, built once per dialect.
    With ``prefix`` the values are bound to parameters named ``prefix`` + column, so that
    the delivery entry can compose this insert with the ledger's and the decision's into
    one statement (PostgreSQL's data-modifying ``WITH``) without a second insert path."""
    from sqlalchemy import bindparam
    from sqlalchemy.dialects import postgresql, sqlite

    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = Message.__table__
    statement = make(table)
    if prefix is not None:
        statement = statement.values({name: bindparam(prefix + name, type_=table.c[name].type)
                                      for name in COLUMNS})  # fmt: skip
    return (statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(table.c.id, table.c.idempotency_key))  # fmt: skip


@functools.cache
def insert_arrays(*, prefix: str) -> str:
    """THE insert of rows as mappings (:func:`row_values`) for PostgreSQL's array form:
    the same ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id,
    idempotency_key``, its rows bound as one array per column (``prefix`` + column,
    :func:`jingxin.data.store.bulk.array_values`), so the delivery entry's batch composes
    it with the ledger's and the decisions' into one fixed-text statement."""
    from jingxin.data.store.bulk import unnest_arrays

    return (f"INSERT INTO messages ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
            f"FROM {unnest_arrays(Message.__table__, COLUMNS, prefix=prefix, alias='u')} "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key")  # fmt: skip


def _table_columns(table: pa.Table, *, now: datetime, first: int = 0) -> pa.Table:
    """The stored columns, in ``COLUMNS`` order, defaults filled in."""
    import pyarrow.compute as pc

    from jingxin.data.store import bulk

    _check_table(table, first=first)
    n = table.num_rows
    now_scalar = pa.scalar(now, bulk.US)
    scheduled = bulk.instant_column(table, "scheduled_at")
    scheduled = (pa.array([now] * n, bulk.US) if scheduled is None
                 else scheduled.fill_null(now_scalar))  # fmt: skip
    expires = bulk.instant_column(table, "expires_at")
    default_expiry = pc.add(scheduled, pa.scalar(DEFAULT_VALIDITY, pa.duration("us")))
    expires = default_expiry if expires is None else pc.coalesce(expires, default_expiry)
    category = table.column("category")
    lane = pc.take(pa.array(list(LANES.values()), pa.int32()),
                   pc.index_in(category, pa.array(list(LANES))))  # fmt: skip
    if "source" in table.column_names:  # the way back's replies: their own lane (lane_of)
        replies = pc.fill_null(pc.is_in(table.column("source").cast(pa.string()),
                                        pa.array(list(REPLY_SOURCES))), False)  # fmt: skip
        lane = pc.if_else(replies, pa.scalar(REPLY_LANE, pa.int32()), lane)

    def given(name: str, kind: pa.DataType, default: object = None) -> pa.Array:
        if name in table.column_names:
            column = table.column(name).cast(kind)
            return column if default is None else column.fill_null(default)
        return pa.array([default] * n, kind)

    columns = {
        "tenant_id": table.column("tenant_id"), "campaign_id": given("campaign_id", pa.int64()),
        "msisdn": table.column("msisdn"), "category": category, "lane": lane,
        "text": table.column("text"), "parts": given("parts", pa.int32(), 1),
        "channel": given("channel", pa.string()),
        "idempotency_key": table.column("idempotency_key"),
        "state": pa.array(["queued"] * n, pa.string()), "scheduled_at": scheduled,
        "created_at": pa.array([now] * n, bulk.US), "updated_at": pa.array([now] * n, bulk.US),
        "cost": given("cost", pa.float64()), "attempts": pa.array([0] * n, pa.int32()),
        "unresolved": pa.array([0] * n, pa.int32()), "expires_at": expires,
        "source": given("source", pa.string(), "api"), "source_id": given("source_id", pa.string()),
        "sender": given("sender", pa.string()), "arm": given("arm", pa.string()),
        "link_token": given("link_token", pa.string()), "link_url": given("link_url", pa.string()),
    }  # fmt: skip
    return pa.table({name: columns[name] for name in COLUMNS})


def _check_table(table: pa.Table, *, first: int = 0) -> None:
    """Required values and known categories; an error names the first bad row."""
    import pyarrow.compute as pc

    from jingxin.data.store import bulk

    for name in ("msisdn", "idempotency_key"):
        index = bulk.first_missing(table, name)
        if index is not None:
            raise InputError(
                f"outbox entry #{first + index + 1}: msisdn and idempotency_key are required"
            )
    for name in ("category", "text", "tenant_id"):
        if name not in table.column_names:
            raise InputError(f"outbox table: no column {name!r}")
    unknown = pc.invert(pc.is_in(table.column("category"), pa.array(list(LANES))))
    index = pc.index(unknown.fill_null(True), True).as_py()
    if index >= 0:
        category = table.column("category")[index].as_py()
        key = table.column("idempotency_key")[index].as_py()
        raise InputError(
            f"outbox entry #{first + index + 1} ({key}): unknown category "
            f"{category!r} (use {', '.join(LANES)})"
        )

"""The contact ledger: contacts actually made, counted for frequency caps.

Only the dispatch package records contacts (through the delivery entry); this module holds
the one insert path it uses, :func:`record_contact_table`: an Arrow table in bulk, or a few
mappings as one ``INSERT ... ON CONFLICT DO NOTHING`` (:func:`record_contacts` is the same
for many mappings, as a table); :func:`insert_after` is the same row insert for the
delivery entry to compose after its outbox insert in one PostgreSQL statement. Recording
is idempotent: an entry whose ``idempotency_key`` is already in the ledger is skipped, so a
retried batch never counts a contact twice.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import LedgerEntry, utc_now
from jingxin.errors import InputError

BATCH = 5_000
CHUNK = 500
REQUIRED = ("tenant_id", "msisdn", "category", "local_date", "idempotency_key")


def record_contacts(session: Session, *, entries: Iterable[Mapping[str, Any]]) -> int:
    """Add ledger entries (``contact_ledger`` columns); returns how many were new. The
    entries go to :func:`record_contact_table` as columns: one insert path."""
    now = utc_now()
    rows = [row_values(i, entry, now) for i, entry in enumerate(entries)]
    if not rows:
        return 0
    from jingxin.data.store import bulk

    table = pa.table({
        **{key: [row[key] for row in rows] for key in ("tenant_id", "msisdn", "category",
                                                       "idempotency_key")},
        "local_date": pa.array([row["local_date"] for row in rows], pa.date32()),
        "campaign_id": pa.array([row["campaign_id"] for row in rows], pa.int64()),
        "contact_at": pa.array([row["contact_at"] for row in rows], bulk.US),
    })  # fmt: skip
    added = 0
    for start in range(0, table.num_rows, BATCH):
        added += record_contact_table(session, table=table.slice(start, BATCH))
    return added


def record_contact_table(session: Session | Connection, *,
                         table: pa.Table | Sequence[Mapping[str, Any]]) -> int:  # fmt: skip
    """Add ledger entries (one column per ledger field; ``campaign_id`` and ``contact_at``
    may be left out): the one insert path of the ledger, used by the delivery entry
    (:mod:`jingxin.dispatch.deliver`) for a campaign chunk (an Arrow table, in bulk) and a
    single message (a few rows as mappings, one ``INSERT ... ON CONFLICT DO NOTHING``). A
    key already recorded is skipped; returns how many were new."""
    connection = session.connection() if isinstance(session, Session) else session
    if not isinstance(table, pa.Table):
        now = utc_now()
        return _insert_few(connection, [row_values(i, entry, now)
                                        for i, entry in enumerate(table)])
    from jingxin.data.store import bulk

    for key in REQUIRED:
        index = bulk.first_missing(table, key)
        if index is not None:
            raise InputError(f"ledger entry #{index}: missing {key}")
    if not pa.types.is_date(table.column("local_date").type):
        raise InputError("ledger entry #0: local_date must be a date")
    now = pa.scalar(utc_now(), bulk.US)
    contact_at = bulk.instant_column(table, "contact_at")
    contact_at = (pa.array([now.as_py()] * table.num_rows, bulk.US) if contact_at is None
                  else contact_at.fill_null(now))  # fmt: skip
    campaign_id = (table.column("campaign_id").cast(pa.int64()) if "campaign_id" in
                   table.column_names else pa.nulls(table.num_rows, pa.int64()))  # fmt: skip
    rows = table.select(list(REQUIRED)).append_column("campaign_id", campaign_id)
    rows = rows.append_column("contact_at", contact_at)
    with store_errors(f"recording {rows.num_rows} contacts in the ledger"):
        return bulk.insert_new(connection, into="contact_ledger", table=rows)


def _insert_few(connection: Connection, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    statement = _few_statement(connection.dialect.name)
    with store_errors(f"recording {len(rows)} contacts in the ledger"):
        return len(connection.execute(statement, rows[0] if len(rows) == 1 else rows).all())


@functools.cache
def _few_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id``, built once."""
    from sqlalchemy.dialects import postgresql, sqlite

    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = LedgerEntry.__table__
    return (make(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(table.c.id))  # fmt: skip


COLUMNS = (*REQUIRED, "campaign_id", "contact_at")


def insert_after(source: Any, *, prefix: str) -> Any:
    """The ledger's insert (PostgreSQL) of one row (:func:`row_values`, bound to
    parameters named ``prefix`` + column) once for each row ``source`` gives: ``INSERT
    INTO contact_ledger ... SELECT :values FROM source ON CONFLICT DO NOTHING``. The
    delivery entry composes it after the outbox's insert (``source``, a CTE), so a contact
    is counted exactly when its message was queued, in the same statement."""
    from sqlalchemy import bindparam
    from sqlalchemy.dialects import postgresql

    table = LedgerEntry.__table__
    # Typed parameters: psycopg's dialect writes each as %(name)s::TYPE (no CAST to a
    # VARCHAR(n), which would cut a long value where the INSERT would refuse it).
    values = select(*(bindparam(prefix + name, type_=table.c[name].type)
                      for name in COLUMNS)).select_from(source)  # fmt: skip
    return (postgresql.insert(table).from_select(list(COLUMNS), values)
            .on_conflict_do_nothing(index_elements=["idempotency_key"]))  # fmt: skip


@functools.cache
def insert_arrays_after(source: str, *, prefix: str) -> str:
    """The ledger's insert (PostgreSQL) of rows (:func:`row_values`) bound as one array
    per column (``prefix`` + column), each kept only if ``source`` (a CTE of the outbox's
    insert, ``RETURNING id, idempotency_key``) gave its key: a contact is counted exactly
    when its message was queued, in the same statement."""
    from jingxin.data.store.bulk import unnest_arrays

    arrays = unnest_arrays(LedgerEntry.__table__, COLUMNS, prefix=prefix, alias="u")
    return (f"INSERT INTO contact_ledger ({', '.join(COLUMNS)}) "
            f"SELECT {', '.join('u.' + c for c in COLUMNS)} FROM {arrays} "
            f"JOIN {source} ON {source}.idempotency_key = u.idempotency_key "
            "ON CONFLICT (idempotency_key) DO NOTHING")  # fmt: skip


def row_values(index: int, entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The stored values of one ledger entry (:data:`COLUMNS`); a bad entry is an
    InputError naming it."""
    missing = [key for key in REQUIRED if entry.get(key) in (None, "")]
    if missing:
        raise InputError(f"ledger entry #{index}: missing {', '.join(missing)}")
    if not isinstance(entry["local_date"], date) or isinstance(entry["local_date"], datetime):
        raise InputError(f"ledger entry #{index}: local_date must be a date")
    contact_at = entry.get("contact_at") or now
    if contact_at.tzinfo is None:
        raise InputError(f"ledger entry #{index}: contact_at has no time zone")
    row = {key: entry[key] for key in REQUIRED}
    row["campaign_id"] = entry.get("campaign_id")
    row["contact_at"] = contact_at
    return row


def count_contacts(
    session: Session,
    *,
    msisdns: Sequence[str],
    since: datetime,
    category: str | None = None,
    tenant_id: str | None = None,
) -> dict[str, int]:
    """Contacts per number since ``since`` (numbers with none are left out)."""
    counts: dict[str, int] = {}
    wanted = list(dict.fromkeys(msisdns))
    with store_errors("counting contacts in the ledger"):
        for start in range(0, len(wanted), CHUNK):
            query = (
                select(LedgerEntry.msisdn, func.count())
                .where(
                    LedgerEntry.msisdn.in_(wanted[start : start + CHUNK]),
                    LedgerEntry.contact_at >= since,
                )
                .group_by(LedgerEntry.msisdn)
            )
            if category is not None:
                query = query.where(LedgerEntry.category == category)
            if tenant_id is not None:
                query = query.where(LedgerEntry.tenant_id == tenant_id)
            counts.update({msisdn: int(n) for msisdn, n in session.execute(query)})
    return counts

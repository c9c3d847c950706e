"""The contact ledger: contacts actually made, counted for frequency caps.

Recording is idempotent: an entry whose ``idempotency_key`` is already in the ledger is
skipped, so a retried batch never counts a contact twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import LedgerEntry, utc_now
from jingxin.errors import InputError

BATCH = 5_000
CHUNK = 500
REQUIRED = ("tenant_id", "msisdn", "category", "local_date", "idempotency_key")


def record_contacts(session: Session, *, entries: Iterable[Mapping[str, Any]]) -> int:
    """Add ledger entries (``contact_ledger`` columns); returns how many were new."""
    now = utc_now()
    rows = [_row(i, entry, now) for i, entry in enumerate(entries)]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(LedgerEntry)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(LedgerEntry.id)
    )
    added = 0
    with store_errors(f"recording {len(rows)} contacts in the ledger"):
        for start in range(0, len(rows), BATCH):
            added += len(session.execute(statement, rows[start : start + BATCH]).all())
    return added


def record_contact_table(session: Session, *, table: pa.Table) -> int:
    """:func:`record_contacts` for a table with one column per ledger field (a chunk of a
    campaign), without a dict per row; same checks, default and idempotency rule."""
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
        return bulk.insert_new(session.connection(), into="contact_ledger", table=rows)


def _row(index: int, entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    missing = [key for key in REQUIRED if entry.get(key) is None]
    if missing:
        raise InputError(f"ledger entry #{index}: missing {', '.join(missing)}")
    if not isinstance(entry["local_date"], date) or isinstance(entry["local_date"], datetime):
        raise InputError(f"ledger entry #{index}: local_date must be a date")
    row = {key: entry[key] for key in REQUIRED}
    row["campaign_id"] = entry.get("campaign_id")
    row["contact_at"] = entry.get("contact_at") or now
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

"""Writing and reading the audit trail: policy decisions in bulk (:class:`StoreAuditSink`,
the store side of :class:`jingxin.policy.audit.AuditSink`: ``COPY`` on PostgreSQL, chunked
``executemany`` on SQLite), a few at a time (:func:`write_decisions`, and
:func:`insert_decision_after`, the same row insert for the delivery entry to compose into
one statement on PostgreSQL), staff actions one by one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import OUTCOMES, AuditEntry, DecisionRecord, Message, utc_now
from jingxin.errors import InputError
from jingxin.policy.audit import CHUNK, COLUMNS, decision_columns, decision_tuples

BATCH = 5_000
DECISION_REQUIRED = ("tenant_id", "msisdn", "idempotency_key", "source", "category", "outcome")
DECISION_OPTIONAL = ("send_at", "reasons", "detail", "decided_at")


def write_decisions(session: Session | Connection, *,
                    decisions: Iterable[Mapping[str, Any]]) -> int:  # fmt: skip
    """Insert decision rows in batches (one row: one plain ``INSERT``, the single-message
    path); returns how many were written. ``session`` may be a Session or a Connection.

    Each mapping has the ``decisions`` columns; ``reasons`` may be a list of codes, and
    a missing ``decided_at`` is now. Every row is checked before anything is written,
    so a bad row (named by its index) writes nothing.
    """
    now = utc_now()
    rows = [decision_values(i, row, now) for i, row in enumerate(decisions)]
    with store_errors(f"writing {len(rows)} policy decisions"):
        if len(rows) == 1:  # a plain INSERT: executemany costs more for one row
            session.execute(_INSERT_DECISION, rows[0])
        else:
            for start in range(0, len(rows), BATCH):
                session.execute(_INSERT_DECISION, rows[start : start + BATCH])
    return len(rows)


_INSERT_DECISION = insert(DecisionRecord.__table__)
DECISION_COLUMNS = (*DECISION_REQUIRED, *DECISION_OPTIONAL)


def insert_decision_after(source: Any, *, prefix: str, detail_from: Mapping[str, str]) -> Any:
    """The decision insert (PostgreSQL) of one row (:func:`decision_values`, bound to
    parameters named ``prefix`` + column) once for each row ``source`` gives, its
    ``detail`` completed with ``{key: source.<column>}`` for each ``detail_from`` item:
    the delivery entry composes it after the outbox's insert (``source``, a CTE), so the
    decision names the message id that the same statement gave (the bound ``detail``
    must then be a mapping, ``{}`` at least)."""
    from sqlalchemy import bindparam, func, literal

    table = DecisionRecord.__table__

    def value(name: str) -> Any:  # typed: psycopg's dialect writes %(name)s::TYPE
        bound = bindparam(prefix + name, type_=table.c[name].type)
        if name != "detail":
            return bound
        pairs = [part for key, column in detail_from.items()
                 for part in (literal(key), source.c[column])]  # fmt: skip
        return bound.op("||")(func.jsonb_build_object(*pairs))

    values = select(*(value(name) for name in DECISION_COLUMNS)).select_from(source)
    return insert(table).from_select(list(DECISION_COLUMNS), values)


def insert_decision_arrays_after(source: str, *, prefix: str) -> str:
    """The decision insert (PostgreSQL) of rows (:func:`decision_values`) bound as one
    array per column (``prefix`` + column) plus ``<prefix>admitted`` (boolean): a row not
    admitted is written as it is; an admitted one only if ``source`` (a CTE of the
    outbox's insert, ``RETURNING id, idempotency_key``) gave its key, its ``detail``
    completed with ``{"message_id": id}`` - as :func:`insert_decision_after` does."""
    from jingxin.data.store.bulk import unnest_arrays

    arrays = unnest_arrays(DecisionRecord.__table__, DECISION_COLUMNS, prefix=prefix,
                           alias="u", extra=[("admitted", "BOOLEAN")])  # fmt: skip
    values = ", ".join(
        f"CASE WHEN {source}.id IS NULL THEN u.detail ELSE COALESCE(u.detail, '{{}}'::jsonb)"
        f" || jsonb_build_object('message_id', {source}.id) END" if c == "detail" else "u." + c
        for c in DECISION_COLUMNS
    )  # fmt: skip
    return (f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) SELECT {values} "
            f"FROM {arrays} LEFT JOIN {source} "
            f"ON u.admitted AND {source}.idempotency_key = u.idempotency_key "
            f"WHERE NOT u.admitted OR {source}.id IS NOT NULL")  # fmt: skip


def decision_values(index: int, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The stored values of one decision (:data:`DECISION_COLUMNS`); a bad row is an
    InputError naming it."""
    missing = [key for key in DECISION_REQUIRED if row.get(key) is None]
    if missing:
        raise InputError(f"decision #{index}: missing {', '.join(missing)}")
    unknown = set(row) - set(DECISION_REQUIRED) - set(DECISION_OPTIONAL)
    if unknown:
        raise InputError(f"decision #{index}: unknown field(s) {', '.join(sorted(unknown))}")
    if row["outcome"] not in OUTCOMES:
        raise InputError(
            f"decision #{index}: outcome {row['outcome']!r} is not one of {', '.join(OUTCOMES)}"
        )
    reasons = row.get("reasons") or ""
    if not isinstance(reasons, str):
        reasons = ",".join(str(code) for code in reasons)
    out = {key: row[key] for key in DECISION_REQUIRED}
    out.update(
        send_at=row.get("send_at"),
        reasons=reasons,
        detail=row.get("detail"),
        decided_at=row.get("decided_at") or now,
    )
    return out


@dataclass(frozen=True, slots=True)
class Explained:
    """One line of ``jingxin why``: a kept decision, or an admission whose record is its
    outbox row (the bulk form keeps no ``send`` decision: see :func:`explain`)."""

    decided_at: datetime
    tenant_id: str
    category: str
    source: str
    idempotency_key: str
    outcome: str
    send_at: datetime | None
    reasons: str
    detail: dict[str, Any] | None


def explain(
    session: Session, *, msisdn: str, days: int = 30, now: datetime | None = None
) -> list[Explained]:
    """Everything decided about ``msisdn`` in the last ``days`` days, newest first: the
    ``decisions`` rows, and every outbox row whose admission has no ``send``/``defer``
    decision beside it. The delivery entry's bulk form (campaigns) writes decisions only
    for what it deferred or rejected: an admitted row's record is its outbox row, written
    in the same chunk, with the same key, decided at its ``created_at`` and due at its
    ``scheduled_at`` - a second copy of a million admissions would be a third of a
    campaign's time (measured in BENCHMARKS.md)."""
    since = (now or utc_now()) - timedelta(days=days)
    decided = [Explained(r.decided_at, r.tenant_id, r.category, r.source, r.idempotency_key,
                         r.outcome, r.send_at, r.reasons, r.detail)
               for r in list_decisions(session, msisdn=msisdn, days=days, now=now)]  # fmt: skip
    admitted = {e.idempotency_key for e in decided if e.outcome in ("send", "defer")}
    query = (select(Message.created_at, Message.tenant_id, Message.category, Message.source,
                    Message.idempotency_key, Message.scheduled_at, Message.campaign_id)
             .where(Message.msisdn == msisdn, Message.created_at >= since))  # fmt: skip
    with store_errors(f"listing messages to {msisdn}"):
        queued = [Explained(row.created_at, row.tenant_id, row.category, row.source or "-",
                            row.idempotency_key, "send", row.scheduled_at, "",
                            {"campaign_id": row.campaign_id} if row.campaign_id else None)
                  for row in session.execute(query)
                  if row.idempotency_key not in admitted]  # fmt: skip
    return sorted(decided + queued, key=lambda e: e.decided_at, reverse=True)


def list_decisions(
    session: Session, *, msisdn: str, days: int = 30, now: datetime | None = None
) -> list[DecisionRecord]:
    """The decisions about ``msisdn`` in the last ``days`` days, newest first."""
    since = (now or utc_now()) - timedelta(days=days)
    query = (
        select(DecisionRecord)
        .where(DecisionRecord.msisdn == msisdn, DecisionRecord.decided_at >= since)
        .order_by(DecisionRecord.decided_at.desc(), DecisionRecord.id.desc())
    )
    with store_errors(f"listing decisions about {msisdn}"):
        return list(session.scalars(query))


def record_action(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    detail: dict[str, Any] | None = None,
    tenant_id: str | None = None,
) -> AuditEntry:
    """Record one staff action (who did what to which object, in which tenant)."""
    entry = AuditEntry(
        actor=actor,
        tenant_id=tenant_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail=dict(detail or {}),
    )
    with store_errors(f"recording {actor}'s {action} on {object_type} {object_id}"):
        session.add(entry)
        session.flush()
    return entry


def list_actions(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: str | int | None = None,
    limit: int = 100,
    tenant_id: str | None = None,
) -> list[AuditEntry]:
    """Recent staff actions, newest first, optionally about one object or one tenant's."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    with store_errors("listing the audit log"):
        return list(session.scalars(query))


class StoreAuditSink:
    """Writes decisions to the store's ``decisions`` table in bulk."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(
        self, decisions: pa.Table, *, decided_at: datetime, source_ids: pa.Array | None = None
    ) -> int:
        table = decision_columns(decisions, decided_at or utc_now(), source_ids)
        if not table.num_rows:
            return 0
        doing = f"writing {table.num_rows} policy decisions"
        with store_errors(doing), self.store.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                _copy(session, table)
            else:
                _executemany(session, table)
        return table.num_rows


def _executemany(session, table: pa.Table) -> None:
    """SQLite: the DB-API's executemany, with values already in the store's text format.

    SQLAlchemy's SQLite DATETIME keeps naive UTC text (see ``UtcDateTime``); we write the
    same text, which skips per-value type processing on a million rows.
    """
    raw = session.connection().connection.driver_connection
    marks = ", ".join("?" for _ in COLUMNS)
    statement = f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({marks})"
    for name in ("send_at", "decided_at"):
        text = pc.strftime(table.column(name), format="%Y-%m-%d %H:%M:%S")
        table = table.set_column(table.schema.get_field_index(name), name, text)
    for start in range(0, table.num_rows, CHUNK):
        raw.executemany(statement, decision_tuples(table.slice(start, CHUNK)))


def _copy(session, table: pa.Table) -> None:
    """PostgreSQL: COPY the rows in as CSV written by Arrow (nulls unquoted, text quoted)."""
    import io

    import pyarrow.csv as pcsv

    raw = session.connection().connection.driver_connection
    statement = f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for start in range(0, table.num_rows, CHUNK * 5):
            buffer = io.BytesIO()
            pcsv.write_csv(
                table.slice(start, CHUNK * 5), buffer, pcsv.WriteOptions(include_header=False)
            )
            copy.write(buffer.getvalue())

"""The outbox: accepted decisions become ``messages`` rows, in bulk and idempotently.

:func:`enqueue` writes many :class:`OutboxEntry` values at once; a row whose
``idempotency_key`` is already in the table is skipped (counted as a duplicate), so
enqueueing the same campaign twice sends nothing twice. PostgreSQL gets ``COPY`` into a
temporary table and one ``INSERT ... ON CONFLICT DO NOTHING``; SQLite gets
``INSERT OR IGNORE`` executemany in chunks.

States and the moves between them::

    queued ─► submitting ─► submitted ─► delivered | undeliverable | expired | rejected | failed
      ▲           │
      └─ retry ───┘  (temporary error, or an unresolved submit re-sent by rule)

Every state has its timestamp: ``created_at`` (queued), ``submitting_at``,
``submitted_at``, ``finished_at`` (the final state).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, insert, or_, select, text, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import LANES, Message, MessagePart, utc_now
from jingxin.errors import InputError

FINAL_STATES = frozenset(
    {"delivered", "undeliverable", "expired", "rejected", "failed"}
)
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"submitting", "expired", "rejected", "failed"}),
    "submitting": frozenset({"queued", "submitted", "expired", "rejected", "failed"}),
    "submitted": FINAL_STATES,
}
DEFAULT_VALIDITY = timedelta(hours=24)
CHUNK = 5_000
COLUMNS = (
    "tenant_id", "campaign_id", "msisdn", "category", "lane", "text", "parts", "channel",
    "idempotency_key", "state", "scheduled_at", "created_at", "updated_at", "cost",
    "attempts", "unresolved", "expires_at",
)  # fmt: skip


def can_move(old: str, new: str) -> bool:
    """True if a message may go from state ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One accepted decision, rendered: what :func:`enqueue` writes."""

    tenant_id: str
    msisdn: str
    category: str
    text: str
    idempotency_key: str
    parts: int = 1
    scheduled_at: datetime | None = None  # None: now
    expires_at: datetime | None = None  # None: scheduled_at + DEFAULT_VALIDITY
    campaign_id: int | None = None
    channel: str | None = None  # None: routing decides at submit time
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    inserted: int
    duplicates: int


def enqueue(
    store: Store, *, entries: Iterable[OutboxEntry], now: datetime | None = None
) -> EnqueueResult:
    """Write ``entries`` as queued messages; existing idempotency keys are skipped."""
    now = now or utc_now()
    inserted = total = 0
    postgres = store.engine.dialect.name == "postgresql"
    for chunk in _chunks(entries, CHUNK if not postgres else 50_000):
        rows = [_row(entry, now, index=total + i) for i, entry in enumerate(chunk)]
        total += len(rows)
        with (
            store_errors(f"enqueueing {len(rows)} messages"),
            store.engine.begin() as conn,
        ):
            inserted += _copy_pg(conn, rows) if postgres else _insert_sqlite(conn, rows)
    return EnqueueResult(inserted=inserted, duplicates=total - inserted)


def _chunks(entries: Iterable[OutboxEntry], size: int) -> Iterator[list[OutboxEntry]]:
    chunk: list[OutboxEntry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _row(entry: OutboxEntry, now: datetime, *, index: int) -> tuple:
    lane = LANES.get(entry.category)
    if lane is None:
        raise InputError(
            f"outbox entry #{index + 1} ({entry.idempotency_key}): unknown category "
            f"{entry.category!r} (use {', '.join(LANES)})"
        )
    if not entry.idempotency_key or not entry.msisdn:
        raise InputError(
            f"outbox entry #{index + 1}: msisdn and idempotency_key are required"
        )
    scheduled = entry.scheduled_at or now
    expires = entry.expires_at or scheduled + DEFAULT_VALIDITY
    return (
        entry.tenant_id, entry.campaign_id, entry.msisdn, entry.category, lane, entry.text,
        entry.parts, entry.channel, entry.idempotency_key, "queued", scheduled, now, now,
        entry.cost, 0, 0, expires,
    )  # fmt: skip


def _insert_sqlite(conn, rows: list[tuple]) -> int:
    names = ", ".join(COLUMNS)
    marks = ", ".join("?" for _ in COLUMNS)
    raw = conn.connection.driver_connection
    cache: dict[datetime, str] = {}
    before = raw.total_changes
    # The driver takes datetimes as ISO text: the store's UtcDateTime reads them back aware.
    raw.executemany(
        f"INSERT OR IGNORE INTO messages ({names}) VALUES ({marks})",
        [_sqlite_row(row, cache) for row in rows],
    )
    return raw.total_changes - before


# Positions of the timestamp columns in COLUMNS; a campaign's rows share a few distinct
# times, so each is formatted once per chunk (strftime was most of the insert time).
_TIMES = tuple(i for i, name in enumerate(COLUMNS) if name.endswith("_at"))


def _sqlite_row(row: tuple, cache: dict[datetime, str]) -> tuple:
    values = list(row)
    for i in _TIMES:
        moment = values[i]
        if moment is not None:
            text_value = cache.get(moment)
            if text_value is None:
                text_value = cache[moment] = moment.astimezone(UTC).strftime(
                    "%Y-%m-%d %H:%M:%S.%f"
                )
            values[i] = text_value
    return tuple(values)


def _copy_pg(conn, rows: list[tuple]) -> int:
    names = ", ".join(COLUMNS)
    conn.execute(text(
        "CREATE TEMP TABLE IF NOT EXISTS outbox_load "
        "(LIKE messages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    ))  # fmt: skip
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY outbox_load ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    result = conn.execute(text(
        f"INSERT INTO messages ({names}) SELECT {names} FROM outbox_load "
        "ON CONFLICT (idempotency_key) DO NOTHING"
    ))  # fmt: skip
    return result.rowcount


@dataclass(frozen=True, slots=True)
class LaneStats:
    lane: str
    state: str
    count: int
    oldest: datetime | None


def stats(store: Store) -> list[LaneStats]:
    """Messages per lane and state, with the oldest ``scheduled_at`` of each group."""
    names = {v: k for k, v in LANES.items()}
    query = (
        select(
            Message.lane, Message.state, func.count(), func.min(Message.scheduled_at)
        )
        .group_by(Message.lane, Message.state)
        .order_by(Message.lane, Message.state)
    )
    with store_errors("reading outbox statistics"), store.sessions() as session:
        rows = session.execute(query).all()
    out = []
    for lane, state, count, oldest in rows:
        if isinstance(oldest, str):  # SQLite: aggregate results bypass the column type
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        out.append(LaneStats(names.get(lane, str(lane)), state, count, oldest))
    return out


# --------------------------------------------------------------------------- transitions


@dataclass(frozen=True, slots=True)
class Submitted:
    """submitting → submitted: the SMSC answered every part."""

    message_id: int
    channel: str
    smsc_ids: tuple[str, ...]
    at: datetime
    cost: float | None


@dataclass(frozen=True, slots=True)
class Moved:
    """submitting → queued (retry at ``retry_at``) or a final state, with the error."""

    message_id: int
    state: str
    error_code: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None
    unresolved: bool = False
    channel: str | None = None


def record_submitted(conn, *, submitted: list[Submitted], now: datetime) -> None:
    """Mark messages submitted and write one ``message_parts`` row per SMSC id."""
    if not submitted:
        return
    conn.execute(
        update(Message)
        .where(Message.id == bindparam("mid"), Message.state == "submitting")
        .values(state="submitted", submitted_at=bindparam("at"), smsc_ids=bindparam("ids"),
                parts=bindparam("n"), channel=bindparam("ch"),
                # No channel tariff: keep the estimate the message was queued with.
                cost=func.coalesce(bindparam("cost"), Message.cost),
                updated_at=now),
        [{"mid": s.message_id, "at": s.at, "ids": list(s.smsc_ids), "n": len(s.smsc_ids),
          "ch": s.channel, "cost": s.cost} for s in submitted],
    )  # fmt: skip
    parts = [
        {"message_id": s.message_id, "part_no": i, "channel": s.channel, "smsc_id": sid,
         "state": "submitted", "submitted_at": s.at}
        for s in submitted for i, sid in enumerate(s.smsc_ids, start=1)
    ]  # fmt: skip
    if parts:
        conn.execute(insert(MessagePart), parts)


def record_moved(conn, *, moved: list[Moved], now: datetime) -> None:
    """Apply retries and final failures to messages still in ``submitting``."""
    retry = [m for m in moved if m.state == "queued"]
    final = [m for m in moved if m.state != "queued"]
    if retry:
        conn.execute(
            update(Message)
            .where(Message.id == bindparam("mid"), Message.state == "submitting")
            .values(state="queued", scheduled_at=bindparam("at"), error_code=bindparam("err"),
                    error_detail=bindparam("detail"), updated_at=now, worker=None,
                    unresolved=Message.unresolved + bindparam("u")),
            [{"mid": m.message_id, "at": m.retry_at or now, "err": m.error_code,
              "detail": m.detail, "u": int(m.unresolved)} for m in retry],
        )  # fmt: skip
    if final:
        conn.execute(
            update(Message)
            .where(Message.id == bindparam("mid"),
                   or_(Message.state == "submitting", Message.state == "queued"))
            .values(state=bindparam("st"), error_code=bindparam("err"), finished_at=now,
                    error_detail=bindparam("detail"), updated_at=now,
                    unresolved=Message.unresolved + bindparam("u")),
            [{"mid": m.message_id, "st": m.state, "err": m.error_code, "detail": m.detail,
              "u": int(m.unresolved)} for m in final],
        )  # fmt: skip


def expire_unreceipted(conn, *, now: datetime, grace: timedelta) -> int:
    """Submitted messages whose receipt never came by ``expires_at + grace``: ``expired``.

    The SMSC gives up at the validity period too, so no receipt by then means none is
    coming (or it was lost); ``error_code`` says ``no_receipt`` so they can be told apart.
    """
    result = conn.execute(
        update(Message)
        .where(Message.state == "submitted", Message.expires_at < now - grace)
        .values(
            state="expired", error_code="no_receipt", finished_at=now, updated_at=now
        )
    )
    return result.rowcount

"""The outbox: accepted decisions become ``messages`` rows, in bulk and idempotently.

Every message enters through :func:`~jingxin.dispatch.outbox_rows.insert_table` (senders
reach it only through the delivery entry, :mod:`jingxin.dispatch.deliver`): the one insert
path, for a campaign chunk and a single message alike. A row whose ``idempotency_key`` is already in the table
is skipped (counted as a duplicate), so enqueueing the same campaign twice sends nothing
twice. A large table goes by ``COPY`` into a temporary table and one ``INSERT ... ON
CONFLICT DO NOTHING`` on PostgreSQL (``executemany`` on SQLite); a few rows go as one
``INSERT ... ON CONFLICT DO NOTHING RETURNING id``, which also says which rows were new.
:func:`enqueue` and :func:`enqueue_table` are the same in a transaction per chunk, for
tools and tests that fill the outbox directly.

States and the moves between them::

    queued ─► submitting ─► submitted ─► delivered | undeliverable | expired | rejected | failed
      ▲           │
      └─ retry ───┘  (temporary error, or an unresolved submit re-sent by rule)

Every state has its timestamp: ``created_at`` (queued), ``submitting_at``,
``submitted_at``, ``finished_at`` (the final state).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from sqlalchemy import bindparam, func, insert, or_, select, text, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import LANE_NAMES, Message, MessagePart, utc_now
from jingxin.dispatch.outbox_rows import insert_table
from jingxin.errors import InputError

FINAL_STATES = frozenset(
    {"delivered", "undeliverable", "expired", "rejected", "failed"}
)
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"submitting", "expired", "rejected", "failed"}),
    "submitting": frozenset({"queued", "submitted", "expired", "rejected", "failed"}),
    "submitted": FINAL_STATES,
}
CHUNK = 5_000


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
    source: str = "api"
    source_id: str | None = None
    sender: str | None = None  # None: the channel's default source address
    arm: str | None = None
    link_token: str | None = None  # the short link the text carries (analytics.links)
    link_url: str | None = None  # where the short link redirects


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    inserted: int
    duplicates: int


def enqueue(
    store: Store, *, entries: Iterable[OutboxEntry], now: datetime | None = None
) -> EnqueueResult:
    """Write ``entries`` as queued messages; existing idempotency keys are skipped. The
    entries go to :func:`enqueue_table` as columns, a chunk at a time: one insert path."""
    now = now or utc_now()
    inserted = total = 0
    for chunk in _chunks(entries, CHUNK):
        inserted += _enqueue(store, _entries_table(chunk, first=total), now=now,
                             first=total).inserted  # fmt: skip
        total += len(chunk)
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


_ENTRY_TYPES = {
    "tenant_id": pa.string(), "msisdn": pa.string(), "category": pa.string(),
    "text": pa.string(), "idempotency_key": pa.string(), "parts": pa.int32(),
    "scheduled_at": pa.timestamp("us", tz="UTC"), "expires_at": pa.timestamp("us", tz="UTC"),
    "campaign_id": pa.int64(), "channel": pa.string(), "cost": pa.float64(),
    "source": pa.string(), "source_id": pa.string(), "sender": pa.string(), "arm": pa.string(),
    "link_token": pa.string(), "link_url": pa.string(),
}  # fmt: skip


def _entries_table(chunk: list[OutboxEntry], *, first: int) -> pa.Table:
    """The entries as the columns :func:`enqueue_table` takes; a naive instant is refused
    (it would be read as UTC), naming the entry."""
    for i, entry in enumerate(chunk):
        for name in ("scheduled_at", "expires_at"):
            moment = getattr(entry, name)
            if moment is not None and moment.tzinfo is None:
                raise InputError(f"outbox entry #{first + i + 1} ({entry.idempotency_key}): "
                                 f"{name} has no time zone")  # fmt: skip
    return pa.table({name: pa.array([getattr(e, name) for e in chunk], kind)
                     for name, kind in _ENTRY_TYPES.items()})  # fmt: skip


# --------------------------------------------------------------------------- columnar


def enqueue_table(store: Store, *, table: pa.Table, now: datetime | None = None) -> EnqueueResult:
    """:func:`enqueue` for a whole table of entries (one column per :class:`OutboxEntry`
    field; ``parts``, ``scheduled_at``, ``expires_at``, ``campaign_id``, ``channel`` and
    ``cost`` may be left out), without a Python object per row: the campaign runner's path.
    Errors name the row; PostgreSQL gets the rows as CSV written by Arrow, SQLite as tuples."""
    return _enqueue(store, table, now=now or utc_now(), first=0)


def _enqueue(store: Store, table: pa.Table, *, now: datetime, first: int) -> EnqueueResult:
    """Insert ``table``'s rows (``first``: the number of the row before its first, for
    errors), skipping idempotency keys already there, a transaction per chunk."""
    postgres = store.engine.dialect.name == "postgresql"
    inserted = 0
    size = 50_000 if postgres else CHUNK
    for start in range(0, table.num_rows, size):
        chunk = table.slice(start, size)
        with (
            store_errors(f"enqueueing {chunk.num_rows} messages"),
            store.engine.begin() as conn,
        ):
            inserted += len(insert_table(conn, table=chunk, now=now, first=first + start))
    return EnqueueResult(inserted=inserted, duplicates=table.num_rows - inserted)


@dataclass(frozen=True, slots=True)
class LaneStats:
    lane: str
    state: str
    count: int
    oldest: datetime | None


def stats(store: Store) -> list[LaneStats]:
    """Messages per lane and state, with the oldest ``scheduled_at`` of each group."""
    names = LANE_NAMES
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
    if conn.dialect.name == "postgresql":
        _record_submitted_pg(conn, submitted, now)
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


# PostgreSQL: one statement per batch over json_to_recordset(one JSON parameter), instead
# of one statement per row: json.dumps and PostgreSQL's JSON parser are C, where binding
# per-row (or per-array-element) parameters was most of the worker's write-back time.
_SUBMITTED_PG = text("""
    UPDATE messages AS m SET state = 'submitted', submitted_at = v.at, smsc_ids = v.ids,
        parts = v.n, channel = v.ch, cost = coalesce(v.cost, m.cost), updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json))
        AS v(mid bigint, at timestamptz, ids jsonb, n int, ch text, cost float8)
    WHERE m.id = v.mid AND m.state = 'submitting'
    RETURNING m.id
""")
_PARTS_PG = text("""
    INSERT INTO message_parts (message_id, part_no, channel, smsc_id, state, submitted_at)
    SELECT mid, no, ch, sid, 'submitted', at
    FROM json_to_recordset(CAST(:rows AS json))
        AS v(mid bigint, no int, ch text, sid text, at timestamptz)
""")


def json_rows(rows: list[dict]) -> str:
    """``rows`` as the one JSON parameter the ``json_to_recordset`` statements take."""
    return json.dumps(rows, default=datetime.isoformat, ensure_ascii=False)


def _record_submitted_pg(conn, submitted: list[Submitted], now: datetime) -> None:
    # Parts only for the messages this moved to 'submitted': writing the same batch again
    # (a retried flush) or a message another worker resolved meanwhile adds no stray parts.
    moved = conn.execute(_SUBMITTED_PG, {"now": now, "rows": json_rows([
        {"mid": s.message_id, "at": s.at, "ids": s.smsc_ids, "n": len(s.smsc_ids),
         "ch": s.channel, "cost": s.cost} for s in submitted
    ])})  # fmt: skip
    recorded = set(moved.scalars())
    parts = [{"mid": s.message_id, "no": i, "ch": s.channel, "sid": sid, "at": s.at}
             for s in submitted if s.message_id in recorded
             for i, sid in enumerate(s.smsc_ids, start=1)]  # fmt: skip
    if parts:
        conn.execute(_PARTS_PG, {"rows": json_rows(parts)})


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

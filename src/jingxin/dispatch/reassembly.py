"""Stored MO parts → whole messages in ``mo_messages`` (reassembled, decoded, once).

Runs in the transaction that stored the parts (:func:`jingxin.dispatch.mo_inbox.store_parts`),
so a single-part MO, or the last part of a long one, becomes its ``mo_messages`` row in the
same commit. Parts are grouped by (channel, sender, receiver, reference, total): arrival
order and interleaving do not matter, a repeated sequence number keeps the first copy, and
a header that lies about the part count simply forms a group that never completes. A group
still short of parts ``part_timeout`` after its first part arrived is written with what
came (``complete`` false), its missing parts never waited for again.

``dedup_key`` of a message is its first part's id, and the insert ignores a conflict, so
two workers (PostgreSQL) racing on one group write one message; parts are linked to it
only while still unlinked.

Cost per flush: a new single-part MO needs no query at all (the part just inserted is
its whole group); the waiting siblings of every long MO the flush touched, and on a sweep
every group whose wait is over, come back in one query; the messages go in with one bulk
insert (:func:`jingxin.data.store.bulk.insert_returning`) and their parts are linked with
one statement (PostgreSQL: an ``UPDATE ... FROM unnest``; SQLite: one ``executemany``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
from sqlalchemy import Connection, and_, bindparam, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

from jingxin.data.msisdn import e164_of_few
from jingxin.data.store import bulk
from jingxin.data.store.models import MoMessage, MoPartRow, utc_now
from jingxin.dispatch.mo_text import mo_text


@dataclass(frozen=True, slots=True)
class Assembled:
    """One message written by this call (for tallies and latency)."""

    mo_id: int
    channel: str
    complete: bool
    undecodable: bool
    received_at: datetime
    sender: str = ""  # the number it came from (E.164 where it normalises)


class StoredPart(NamedTuple):
    """A part as stored (what reassembly reads; a row of :data:`_COLUMNS` has the same names)."""

    id: int
    channel: str
    protocol: str
    source: str
    destination: str
    ref: int | None
    total: int
    seq: int
    coding: int
    payload: bytes
    received_at: datetime


_COLUMNS = (MoPartRow.id, MoPartRow.channel, MoPartRow.protocol, MoPartRow.source,
            MoPartRow.destination, MoPartRow.ref, MoPartRow.total, MoPartRow.seq,
            MoPartRow.coding, MoPartRow.payload, MoPartRow.received_at)  # fmt: skip
_MESSAGES = pa.schema([
    ("channel", pa.string()), ("msisdn", pa.string()), ("service_number", pa.string()),
    ("text", pa.string()), ("coding", pa.int64()), ("parts", pa.int64()),
    ("parts_expected", pa.int64()), ("complete", pa.bool_()), ("undecodable", pa.bool_()),
    ("received_at", bulk.US), ("stored_at", bulk.US), ("dedup_key", pa.string()),
])  # fmt: skip
_SQLITE_PARAMETERS = 500  # per IN list: SQLite caps bound parameters
# PostgreSQL: the messages of a flush's reassembled groups, one array per column of
# _MESSAGES (one statement text whatever their number); a key already there (a racing
# worker's) inserts nothing and is looked up after.
# The same statement links the parts of the messages it wrote (their part ids and keys as
# two more arrays): one round trip where a flush took two; a group a racing worker wrote
# first is linked after, by _link.
_MESSAGES_PG = text(
    f"WITH m AS (INSERT INTO mo_messages ({', '.join(_MESSAGES.names)}) SELECT * FROM "
    f"{bulk.unnest_arrays(MoMessage.__table__, _MESSAGES.names, prefix='', alias='u')} "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key), "
    "linked AS (UPDATE mo_parts SET mo_id = coalesce(mo_parts.mo_id, m.id) "
    "FROM unnest(CAST(:link_parts AS BIGINT[]), CAST(:link_keys AS TEXT[])) AS v(part, key) "
    "JOIN m ON m.dedup_key = v.key WHERE mo_parts.id = v.part) "
    "SELECT id, dedup_key FROM m"
)


def assemble(conn: Connection, *, new: Sequence[StoredPart], now: datetime,
             part_timeout: timedelta, expire: bool = True,
             siblings: Sequence[StoredPart] | None = None) -> list[Assembled]:  # fmt: skip
    """Write a message for every group ``new`` parts completed (or whose wait is over), and
    with ``expire`` for every unlinked group anywhere older than ``part_timeout``.
    ``siblings``: the waiting parts of long MO from the senders of ``new`` as the insert
    already read them (PostgreSQL's :data:`~jingxin.dispatch.mo_inbox._STORE_PG`: a query
    less per flush); without them, or with ``expire``, they are read here."""
    limit = now - part_timeout
    singles = [part for part in new if part.total <= 1]
    ready = [([part], {part.seq: part}, True) for part in singles]
    sources = sorted({part.source for part in new if part.total > 1})
    if sources or expire:
        groups: dict[tuple, list[Any]] = defaultdict(list)
        if siblings is not None and not expire:
            wanted = set(sources)  # the statement read them for duplicates' senders too
            rows = sorted([*(p for p in siblings if p.source in wanted),
                           *(p for p in new if p.total > 1)], key=lambda p: p.id)  # fmt: skip
        else:
            rows = _unlinked(conn, sources=sources, limit=limit, expire=expire)
        for row in rows:
            key = (row.channel, row.source, row.destination, row.ref, row.total) if row.total > 1 else (row.id,)
            groups[key].append(row)
        for parts in groups.values():
            by_seq: dict[int, Any] = {}
            for row in parts:
                by_seq.setdefault(row.seq, row)
            complete = len(by_seq) >= parts[0].total
            if complete or min(r.received_at for r in parts) <= limit:
                ready.append((parts, by_seq, complete))
    return _write(conn, ready=ready, now=now) if ready else []


def _unlinked(conn: Connection, *, sources: list[str], limit: datetime, expire: bool) -> list[Any]:
    """Unlinked parts of long MO from ``sources`` and, with ``expire``, of every group with
    a part older than ``limit``: one query (SQLite: one per 500 senders)."""
    step = (len(sources) or 1) if conn.dialect.name == "postgresql" else _SQLITE_PARAMETERS
    chunks = [sources[i : i + step] for i in range(0, len(sources), step)] or [[]]
    expired = select(MoPartRow.source).where(MoPartRow.mo_id.is_(None), MoPartRow.received_at <= limit)
    rows: dict[int, Any] = {}
    for number, chunk in enumerate(chunks):
        wanted = []
        if chunk:
            wanted.append(and_(MoPartRow.total > 1, bulk.among(conn, MoPartRow.source, chunk)))
        if expire and number == 0:
            wanted.append(MoPartRow.source.in_(expired))
        if wanted:
            query = select(*_COLUMNS).where(MoPartRow.mo_id.is_(None), or_(*wanted))
            rows.update((row.id, row) for row in conn.execute(query))
    return [rows[key] for key in sorted(rows)]


def _write(conn: Connection, *, ready: list, now: datetime) -> list[Assembled]:
    """One bulk insert for every ready group, one statement linking their parts."""
    senders = msisdns([parts[0].source for parts, _, _ in ready])
    written_at = max(now, utc_now())  # stored_at: the wall clock, just before the commit
    columns: list[list] = [[] for _ in _MESSAGES]
    for (parts, by_seq, complete), msisdn in zip(ready, senders, strict=True):
        first = parts[0]
        payload = b"".join(by_seq[seq].payload for seq in sorted(by_seq))
        text_, undecodable = mo_text(protocol=first.protocol, coding=first.coding, payload=payload)
        row = (first.channel, msisdn, first.destination[:21], text_, first.coding, len(by_seq),
               first.total, complete, undecodable, min(r.received_at for r in parts), written_at,
               f"mo:{first.channel}:{first.id}"[:200])  # fmt: skip
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    keys = columns[-1]
    postgresql = conn.dialect.name == "postgresql"
    if postgresql:
        # One statement over arrays (no temporary table, no COPY): a flush's long MO are
        # a few dozen rows, where the COPY path's three round trips and CSV cost the most.
        parts_of = [(row.id, key) for (parts, _, _), key in zip(ready, keys, strict=True)
                    for row in parts]  # fmt: skip
        found = conn.execute(_MESSAGES_PG, {
            **dict(zip(_MESSAGES.names, columns, strict=True)),
            "link_parts": [p for p, _ in parts_of], "link_keys": [k for _, k in parts_of]})  # fmt: skip
    else:
        table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, _MESSAGES, strict=True)],
                                     schema=_MESSAGES)  # fmt: skip
        found = bulk.insert_returning(conn, into="mo_messages", table=table, key="dedup_key",
                                      returning=("id", "dedup_key"))  # fmt: skip
    written = {key: mo_id for mo_id, key in found}
    missing = [key for key in keys if key not in written]
    raced = {}
    if missing:  # another worker wrote these first (PostgreSQL): link to its rows
        found = select(MoMessage.dedup_key, MoMessage.id).where(MoMessage.dedup_key.in_(missing))
        raced = dict(conn.execute(found).all())
    links = [(row.id, written.get(key) or raced[key])
             for (parts, _, _), key in zip(ready, keys, strict=True) for row in parts
             if not (postgresql and key in written)]  # PostgreSQL linked those already
    if links:
        _link(conn, links)
    return [Assembled(written[key], columns[0][i], columns[7][i], columns[8][i], columns[9][i],
                      columns[1][i])
            for i, key in enumerate(keys) if key in written]  # fmt: skip


def _link(conn: Connection, links: list[tuple[int, int]]) -> None:
    """Point each part at its message, only while it points nowhere (a racing worker's
    link stays)."""
    if conn.dialect.name == "postgresql":
        # coalesce, not "AND mo_id IS NULL": with that condition the planner reads the
        # mo_id index for every NULL ever written (each part starts unlinked, and the dead
        # entries stay until a vacuum) - 6 ms a flush and growing; this probes the key.
        conn.execute(text(
            "UPDATE mo_parts SET mo_id = coalesce(mo_parts.mo_id, v.mo) "
            "FROM unnest(CAST(:parts AS BIGINT[]), CAST(:mos AS BIGINT[])) AS v(part, mo) "
            "WHERE mo_parts.id = v.part"
        ).bindparams(bindparam("parts", [p for p, _ in links], type_=ARRAY(BIGINT)),
                     bindparam("mos", [m for _, m in links], type_=ARRAY(BIGINT))))  # fmt: skip
        return
    conn.exec_driver_sql("UPDATE mo_parts SET mo_id = ? WHERE id = ? AND mo_id IS NULL",
                         [(m, p) for p, m in links])  # fmt: skip


def msisdns(sources: list[str]) -> list[str]:
    """E.164 ('+86…') for each sender that normalises, else the source as received (max 20),
    by the warehouse's rules (:func:`~jingxin.data.msisdn.e164_of_few`)."""
    return [e164 if e164 is not None else source[:20]
            for e164, source in zip(e164_of_few(sources), sources, strict=True)]  # fmt: skip

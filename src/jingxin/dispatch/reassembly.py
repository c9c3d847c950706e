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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from jingxin.data.store.models import MoMessage, MoPartRow
from jingxin.data.msisdn import normalise_msisdns
from jingxin.dispatch.mo_text import mo_text


@dataclass(frozen=True, slots=True)
class Assembled:
    """One message written by this call (for tallies and latency)."""

    mo_id: int
    channel: str
    complete: bool
    undecodable: bool
    received_at: datetime


_COLUMNS = (MoPartRow.id, MoPartRow.channel, MoPartRow.protocol, MoPartRow.source,
            MoPartRow.destination, MoPartRow.ref, MoPartRow.total, MoPartRow.seq,
            MoPartRow.coding, MoPartRow.payload, MoPartRow.received_at)  # fmt: skip


def assemble(conn: Connection, *, now: datetime, part_timeout: timedelta) -> list[Assembled]:
    """Write a message for every unlinked group that is whole or older than ``part_timeout``."""
    rows = conn.execute(select(*_COLUMNS).where(MoPartRow.mo_id.is_(None)).order_by(MoPartRow.id)).all()
    groups: dict[tuple, list[Any]] = defaultdict(list)
    for row in rows:
        key = (row.channel, row.source, row.destination, row.ref, row.total) if row.total > 1 else (row.id,)
        groups[key].append(row)
    limit = now - part_timeout
    ready = []
    for parts in groups.values():
        by_seq: dict[int, Any] = {}
        for row in parts:
            by_seq.setdefault(row.seq, row)
        complete = len(by_seq) >= parts[0].total
        if complete or min(r.received_at for r in parts) <= limit:
            ready.append((parts, by_seq, complete))
    return _write(conn, ready=ready, now=now) if ready else []


def _write(conn: Connection, *, ready: list, now: datetime) -> list[Assembled]:
    """One multi-row insert for every ready group, one executemany linking their parts."""
    senders = msisdns([parts[0].source for parts, _, _ in ready])
    values = []
    for (parts, by_seq, complete), msisdn in zip(ready, senders, strict=True):
        first = parts[0]
        payload = b"".join(by_seq[seq].payload for seq in sorted(by_seq))
        text, undecodable = mo_text(protocol=first.protocol, coding=first.coding, payload=payload)
        values.append({
            "channel": first.channel, "msisdn": msisdn, "service_number": first.destination[:21],
            "text": text, "coding": first.coding, "parts": len(by_seq),
            "parts_expected": first.total, "complete": complete, "undecodable": undecodable,
            "received_at": min(r.received_at for r in parts), "stored_at": now,
            "dedup_key": f"mo:{first.channel}:{first.id}"[:200],
        })  # fmt: skip
    written = dict(conn.execute(_insert_ignoring(conn.dialect.name), values).all())
    missing = [v["dedup_key"] for v in values if v["dedup_key"] not in written]
    if missing:  # another worker wrote these first (PostgreSQL): link to its rows
        found = select(MoMessage.dedup_key, MoMessage.id).where(MoMessage.dedup_key.in_(missing))
        raced = dict(conn.execute(found).all())
    else:
        raced = {}
    links = [{"part": row.id, "mo": written.get(v["dedup_key"]) or raced[v["dedup_key"]]}
             for (parts, _, _), v in zip(ready, values, strict=True) for row in parts]  # fmt: skip
    conn.execute(
        update(MoPartRow).where(MoPartRow.id == bindparam("part"), MoPartRow.mo_id.is_(None))
        .values(mo_id=bindparam("mo")).execution_options(synchronize_session=False),
        links,
    )  # fmt: skip
    return [Assembled(written[v["dedup_key"]], v["channel"], v["complete"], v["undecodable"],
                      v["received_at"]) for v in values if v["dedup_key"] in written]  # fmt: skip


def msisdns(sources: list[str]) -> list[str]:
    """E.164 ('+86…') for each sender that normalises, else the source as received (max 20):
    the warehouse's vectorised normaliser, one call per batch."""
    import pyarrow as pa

    column = normalise_msisdns(pa.array(sources, pa.string()))
    return [e164 if e164 is not None else source[:20]
            for e164, source in zip(column.e164.to_pylist(), sources, strict=True)]  # fmt: skip


def _insert_ignoring(dialect: str):
    from sqlalchemy.dialects import postgresql, sqlite

    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (make(MoMessage).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(MoMessage.dedup_key, MoMessage.id))  # fmt: skip

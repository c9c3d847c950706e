"""The durable MO inbox: MO parts into ``mo_parts``, exactly once per PDU, in the flusher's
transaction.

Crash-safety contract: :func:`store_parts` runs inside the transaction whose commit
resolves the future the channel waits on before it acknowledges the PDU
(:mod:`jingxin.dispatch.inbox`). A part is therefore in the database before the SMSC hears
it was received; a worker killed earlier leaves it unacknowledged and the SMSC delivers it
again. The redelivery is stored once: ``dedup_key`` is unique and inserted with ON
CONFLICT DO NOTHING. It is the SMSC's id for the PDU when the protocol carries one (CMPP
Msg_Id), else a fingerprint of what the PDU says (channel, sender, receiver, coding,
concatenation numbers, payload): the same fingerprint within ``duplicate_window`` counts
as the same PDU (a subscriber's identical text twice within the window is kept once -
harmless for the keywords handlers act on). Reassembly and decoding follow in the same
transaction (:mod:`jingxin.dispatch.reassembly`).

Cost: a flush of parts is one query for recent fingerprints and one bulk insert that
answers the ids of the rows that were new (:func:`jingxin.data.store.bulk.insert_returning`:
COPY and one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on PostgreSQL, one
``executemany`` of plain tuples on SQLite) - no statement per part, no ORM object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
from sqlalchemy import Connection, String, select, text

from jingxin.data.store import bulk
from jingxin.data.store.models import MoPartRow, UtcDateTime
from jingxin.dispatch.reassembly import Assembled, StoredPart, assemble
from jingxin.domain.sms import MoPart

MoItem = tuple[str, MoPart]  # (channel name, part)

# The columns a flush inserts, in this order (the Arrow table handed to the bulk insert).
_SCHEMA = pa.schema([
    ("channel", pa.string()), ("protocol", pa.string()), ("source", pa.string()),
    ("destination", pa.string()), ("ref", pa.int64()), ("total", pa.int64()), ("seq", pa.int64()),
    ("coding", pa.int64()), ("payload", pa.binary()), ("smsc_id", pa.string()),
    ("fingerprint", pa.string()), ("dedup_key", pa.string()), ("received_at", bulk.US),
])  # fmt: skip


_RECENT_PG = text(
    "SELECT dedup_key, received_at FROM mo_parts WHERE dedup_key IN (SELECT unnest(CAST(:keys AS TEXT[])))"
).columns(dedup_key=String, received_at=UtcDateTime)


@dataclass(frozen=True)
class InboxRules:
    """``[inbox]`` timing: how long parts wait for their siblings, and the duplicate window."""

    part_timeout: timedelta = timedelta(seconds=600)
    duplicate_window: timedelta = timedelta(seconds=600)


@dataclass
class MoTally:
    """What one write did (the worker adds it to its own tally and metrics)."""

    stored: int = 0
    duplicates: int = 0
    assembled: list[Assembled] = field(default_factory=list)


def fingerprint(channel: str, part: MoPart) -> str:
    """sha1 over what identifies a PDU that carries no SMSC id."""
    head = f"{channel}|{part.source}|{part.destination}|{part.coding}|{part.ref}|{part.total}|{part.seq}|"
    return hashlib.sha1(head.encode() + part.payload, usedforsecurity=False).hexdigest()


def dedup_key(channel: str, part: MoPart, print_: str, window: timedelta) -> str:
    if part.smsc_id:
        return f"{channel}:id:{part.smsc_id}"[:200]
    bucket = int(part.received_at.timestamp() // max(window.total_seconds(), 1.0))
    return f"{channel}:fp:{print_}:{bucket}"


def store_parts(
    conn: Connection, *, items: Sequence[MoItem], now: datetime, rules: InboxRules,
    expire: bool = True,
) -> MoTally:  # fmt: skip
    """Insert ``items`` (each once), then write a message for every group they complete.
    With ``expire`` (the worker's sweeps, and any call without items) also for every group
    anywhere whose wait is over."""
    tally = MoTally()
    new = _insert(conn, items=items, rules=rules, tally=tally) if items else []
    tally.assembled = assemble(conn, new=new, now=now, part_timeout=rules.part_timeout,
                               expire=expire or not items)  # fmt: skip
    return tally


def _insert(conn: Connection, *, items: Sequence[MoItem], rules: InboxRules,
            tally: MoTally) -> list[StoredPart]:  # fmt: skip
    """The parts of ``items`` that were new, with their ids."""
    prints = [fingerprint(channel, part) for channel, part in items]
    seen = _recent(conn, items=items, prints=prints, window=rules.duplicate_window)
    keys: dict[str, StoredPart] = {}
    columns: list[list] = [[] for _ in _SCHEMA]
    for print_, (channel, part) in zip(prints, items, strict=True):
        key = dedup_key(channel, part, print_, rules.duplicate_window)
        if (not part.smsc_id and print_ in seen) or key in keys:
            continue  # delivered again (earlier, or twice in this flush)
        seen.add(print_)
        single = part.total is None or part.total <= 1 or part.seq is None
        stored = StoredPart(0, channel, part.protocol, part.source[:32], part.destination[:32],
                            None if single else part.ref, 1 if single else part.total,
                            1 if single else part.seq, part.coding, part.payload, part.received_at)  # fmt: skip
        keys[key] = stored
        for column, value in zip(columns, (*stored[1:10], part.smsc_id, print_, key, part.received_at),
                                 strict=True):  # fmt: skip
            column.append(value)
    new = []
    if keys:
        table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, _SCHEMA, strict=True)],
                                     schema=_SCHEMA)  # fmt: skip
        returned = bulk.insert_returning(conn, into="mo_parts", table=table, key="dedup_key",
                                         returning=("id", "dedup_key"))  # fmt: skip
        new = [keys[key]._replace(id=part_id) for part_id, key in returned]
    tally.stored += len(new)
    tally.duplicates += len(items) - len(new)
    return new


def _recent(conn: Connection, *, items: Sequence[MoItem], prints: list[str],
            window: timedelta) -> set[str]:  # fmt: skip
    """The fingerprints among ``items`` without an SMSC id that a part stored less than
    ``window`` before them already has. Such a part's dedup key names the same window-long
    bucket or the one before, so this is one lookup on the unique key (an index PostgreSQL
    uses even before it has statistics, and with a prepared plan; SQLite: one query per 500
    keys)."""
    width = window.total_seconds()
    wanted: dict[str, list[tuple[str, datetime]]] = {}
    for print_, (channel, part) in zip(prints, items, strict=True):
        if not part.smsc_id:
            key = dedup_key(channel, part, print_, window)
            head, _, bucket = key.rpartition(":")
            for candidate in (key, f"{head}:{int(bucket) - 1}"):
                wanted.setdefault(candidate, []).append((print_, part.received_at))
    if not wanted:
        return set()
    keys = sorted(wanted)
    if conn.dialect.name == "postgresql":
        # A semi-join on the array, not "= ANY(array)": under the prepared (generic) plan
        # PostgreSQL reads a young table whole and compares every row with every key -
        # ~13 ms a flush at 4,000 parts, growing; the join probes the unique index.
        rows = conn.execute(_RECENT_PG, {"keys": keys}).all()
    else:
        rows = []
        for start in range(0, len(keys), 500):
            rows += conn.execute(select(MoPartRow.dedup_key, MoPartRow.received_at).where(
                MoPartRow.dedup_key.in_(keys[start : start + 500]))).all()  # fmt: skip
    found: set[str] = set()
    for key, stored_at in rows:
        found.update(print_ for print_, at in wanted[key]
                     if abs((at - stored_at).total_seconds()) <= width)  # fmt: skip
    return found

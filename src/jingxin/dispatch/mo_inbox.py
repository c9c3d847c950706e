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

Cost: on PostgreSQL a flush is one statement (:data:`_STORE_PG`): the window's duplicates
are probed on the unique key, the new parts inserted, and every single-part MO written
as its message with its part already linked - the parts of long MO then go through
reassembly. On SQLite: one query for recent fingerprints and one ``executemany``
(:func:`jingxin.data.store.bulk.insert_returning`) - no statement per part, no ORM object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pyarrow as pa
from sqlalchemy import Connection, select, text

from jingxin.data.store import bulk
from jingxin.data.store.models import MoPartRow, utc_now
from jingxin.dispatch.mo_text import mo_text
from jingxin.dispatch.reassembly import Assembled, StoredPart, assemble, msisdns
from jingxin.domain.sms import MoPart

MoItem = tuple[str, MoPart]  # (channel name, part)

# The columns a flush inserts, in this order (the Arrow table handed to the bulk insert).
_SCHEMA = pa.schema([
    ("channel", pa.string()), ("protocol", pa.string()), ("source", pa.string()),
    ("destination", pa.string()), ("ref", pa.int64()), ("total", pa.int64()), ("seq", pa.int64()),
    ("coding", pa.int64()), ("payload", pa.binary()), ("smsc_id", pa.string()),
    ("fingerprint", pa.string()), ("dedup_key", pa.string()), ("received_at", bulk.US),
])  # fmt: skip


_PG_ARRAYS = ("channel", "protocol", "source", "destination", "ref", "total", "seq", "coding",
              "payload", "smsc_id", "fingerprint", "dedup_key", "received_at", "previous",
              "msisdn", "text", "undecodable")  # fmt: skip

# PostgreSQL: a flush in one statement whatever its size (arrays, so it is prepared once).
# ``v``: the flush's parts, with the message of each single-part one (msisdn, text) already
# decoded; ``fresh``: those no part stored within the duplicate window repeats (two probes
# of the unique key: this window's bucket and the one before), each single one given its
# message id at once; ``p``: the insert, a conflict (a racing redelivery) skipped; ``m``:
# the message of every single-part one that went in, its part already pointing at it (the
# foreign key is checked at the end of the statement, when both rows are there). The
# parts of long MO go in unlinked and wait for reassembly.
_STORE_PG = text("""
WITH v AS (
    SELECT * FROM unnest(
        CAST(:channel AS TEXT[]), CAST(:protocol AS TEXT[]), CAST(:source AS TEXT[]),
        CAST(:destination AS TEXT[]), CAST(:ref AS BIGINT[]), CAST(:total AS BIGINT[]),
        CAST(:seq AS BIGINT[]), CAST(:coding AS BIGINT[]), CAST(:payload AS BYTEA[]),
        CAST(:smsc_id AS TEXT[]), CAST(:fingerprint AS TEXT[]), CAST(:dedup_key AS TEXT[]),
        CAST(:received_at AS TIMESTAMPTZ[]), CAST(:previous AS TEXT[]), CAST(:msisdn AS TEXT[]),
        CAST(:text AS TEXT[]), CAST(:undecodable AS BOOLEAN[])
    ) AS v(channel, protocol, source, destination, ref, total, seq, coding, payload, smsc_id,
           fingerprint, dedup_key, received_at, previous, msisdn, text, undecodable)
), fresh AS MATERIALIZED (
    SELECT v.*, CASE WHEN v.msisdn IS NOT NULL THEN nextval('mo_messages_id_seq') END AS mo
    FROM v
    WHERE v.previous IS NULL OR (
        NOT EXISTS (SELECT 1 FROM mo_parts r WHERE r.dedup_key = v.dedup_key
                    AND r.received_at BETWEEN v.received_at - :window AND v.received_at + :window)
        AND NOT EXISTS (SELECT 1 FROM mo_parts r WHERE r.dedup_key = v.previous
                    AND r.received_at BETWEEN v.received_at - :window AND v.received_at + :window))
), p AS (
    INSERT INTO mo_parts (channel, protocol, source, destination, ref, total, seq, coding,
                          payload, smsc_id, fingerprint, dedup_key, received_at, mo_id)
    SELECT channel, protocol, source, destination, ref, total, seq, coding, payload, smsc_id,
           fingerprint, dedup_key, received_at, mo
    FROM fresh
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, dedup_key, mo_id
), m AS (
    INSERT INTO mo_messages (id, channel, msisdn, service_number, text, coding, parts,
                             parts_expected, complete, undecodable, received_at, stored_at,
                             dedup_key)
    SELECT p.mo_id, f.channel, f.msisdn, left(f.destination, 21), f.text, f.coding, 1, 1, TRUE,
           f.undecodable, f.received_at, :stored_at, 'mo:' || f.channel || ':' || p.id
    FROM p JOIN fresh f ON f.dedup_key = p.dedup_key
    WHERE p.mo_id IS NOT NULL
)
SELECT id, dedup_key, mo_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM p
UNION ALL
-- the waiting siblings: after id, dedup_key and mo_id (NULL), the fields of StoredPart in
-- its order (_insert_pg builds one from each such row)
SELECT w.id, NULL, NULL, w.channel, w.protocol, w.source, w.destination, w.ref, w.total,
       w.seq, w.coding, w.payload, w.received_at
FROM (SELECT DISTINCT source FROM fresh WHERE total > 1) s
JOIN LATERAL (SELECT * FROM mo_parts r WHERE r.source = s.source AND r.mo_id IS NULL
              AND r.total > 1 OFFSET 0) w ON TRUE
""")


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
    candidates = _candidates(items, window=rules.duplicate_window)
    if conn.dialect.name == "postgresql" and candidates:
        # Single-part MO (most of them) are stored whole by this one statement; only the
        # parts of long ones are left to reassembly.
        new, tally.assembled, siblings = _insert_pg(conn, candidates=candidates, now=now,
                                                    rules=rules)  # fmt: skip
        waiting = [part for part in new if part.total > 1]
    else:
        new = _insert(conn, candidates=candidates, rules=rules) if candidates else []
        waiting, siblings = new, None
    tally.stored += len(new)
    tally.duplicates += len(items) - len(new)
    tally.assembled += assemble(conn, new=waiting, now=now, part_timeout=rules.part_timeout,
                                expire=expire or not items, siblings=siblings)  # fmt: skip
    return tally


def is_single(part: MoPart) -> bool:
    """Is ``part`` a whole MO (no concatenation header, or one of one)?"""
    return part.total is None or part.total <= 1 or part.seq is None


def one_statement(items: Sequence[MoItem], *, expire: bool) -> bool:
    """Does :func:`store_parts` store ``items`` in one statement on PostgreSQL? It does
    when they are all single-part MO and no sweep is asked: then the caller may run it in
    autocommit (one round trip, where ``BEGIN`` and ``COMMIT`` made three)."""
    return bool(items) and not expire and all(is_single(part) for _, part in items)


class _Candidate(NamedTuple):
    """A part of a flush that is no repeat of an earlier one in the same flush."""

    key: str  # its dedup_key
    previous: str | None  # the fingerprint key of the window before (None: an SMSC id)
    part: StoredPart
    smsc_id: str | None
    fingerprint: str


def _candidates(items: Sequence[MoItem], *, window: timedelta) -> list[_Candidate]:
    """``items`` without the repeats inside the flush (the same key, or the same
    fingerprint without an SMSC id), as they will be stored."""
    out: dict[str, _Candidate] = {}
    prints: set[str] = set()
    for channel, part in items:
        print_ = fingerprint(channel, part)
        if not part.smsc_id and print_ in prints:
            continue
        key = dedup_key(channel, part, print_, window)
        if key in out:
            continue
        prints.add(print_)
        previous = None
        if not part.smsc_id:
            head, _, bucket = key.rpartition(":")
            previous = f"{head}:{int(bucket) - 1}"
        single = is_single(part)
        stored = StoredPart(0, channel, part.protocol, part.source[:32], part.destination[:32],
                            None if single else part.ref, 1 if single else part.total,
                            1 if single else part.seq, part.coding, part.payload, part.received_at)  # fmt: skip
        out[key] = _Candidate(key, previous, stored, part.smsc_id, print_)
    return list(out.values())


def _insert(conn: Connection, *, candidates: list[_Candidate], rules: InboxRules) -> list[StoredPart]:
    """The parts of ``candidates`` that were new, with their ids (one lookup of recent
    fingerprints, one bulk insert)."""
    seen = _recent(conn, candidates=candidates, window=rules.duplicate_window)
    keys: dict[str, StoredPart] = {}
    columns: list[list] = [[] for _ in _SCHEMA]
    for c in candidates:
        if c.previous is not None and c.fingerprint in seen:
            continue  # delivered again
        keys[c.key] = c.part
        for column, value in zip(columns, (*c.part[1:10], c.smsc_id, c.fingerprint, c.key, c.part.received_at),
                                 strict=True):  # fmt: skip
            column.append(value)
    if not keys:
        return []
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, _SCHEMA, strict=True)],
                                 schema=_SCHEMA)  # fmt: skip
    returned = bulk.insert_returning(conn, into="mo_parts", table=table, key="dedup_key",
                                     returning=("id", "dedup_key"))  # fmt: skip
    return [keys[key]._replace(id=part_id) for part_id, key in returned]


def _insert_pg(conn: Connection, *, candidates: list[_Candidate], now: datetime, rules: InboxRules,
               ) -> tuple[list[StoredPart], list[Assembled], list[StoredPart]]:  # fmt: skip
    """PostgreSQL: the parts of ``candidates`` that were new, with their ids, the messages
    of the single-part ones among them, and the parts of long MO stored before that still
    wait, from the senders of the new long parts (their siblings, for reassembly) - one
    statement (:data:`_STORE_PG`)."""
    singles = [c for c in candidates if c.part.total <= 1]
    senders = iter(msisdns([c.part.source for c in singles]))
    arrays: dict[str, list] = {name: [] for name in _PG_ARRAYS}
    unreadable: dict[str, bool] = {}
    senders_of: dict[str, str] = {}
    for c in candidates:
        part = c.part
        msisdn = text_ = undecodable = None
        if part.total <= 1:
            msisdn = senders_of[c.key] = next(senders)
            text_, undecodable = mo_text(protocol=part.protocol, coding=part.coding, payload=part.payload)
            unreadable[c.key] = undecodable
        row = (*part[1:10], c.smsc_id, c.fingerprint, c.key, part.received_at, c.previous,
               msisdn, text_, undecodable)  # fmt: skip
        for name, value in zip(_PG_ARRAYS, row, strict=True):
            arrays[name].append(value)
    stored_at = max(now, utc_now())  # the wall clock, just before the commit
    returned = conn.execute(_STORE_PG, {**arrays, "window": rules.duplicate_window,
                                        "stored_at": stored_at}).all()  # fmt: skip
    by_key = {c.key: c.part for c in candidates}
    new, assembled, siblings = [], [], []
    for part_id, key, mo_id, *waiting in returned:
        if key is None:  # a sibling stored before (text SQL: its instant as the session's zone)
            siblings.append(StoredPart(part_id, *waiting[:-1], waiting[-1].astimezone(UTC)))
            continue
        part = by_key[key]._replace(id=part_id)
        new.append(part)
        if mo_id is not None:
            assembled.append(Assembled(mo_id, part.channel, True, unreadable[key], part.received_at,
                                       senders_of[key]))
    return new, assembled, siblings


def _recent(conn: Connection, *, candidates: list[_Candidate], window: timedelta) -> set[str]:
    """The fingerprints among ``candidates`` without an SMSC id that a part stored less than
    ``window`` before them already has. Such a part's dedup key names the same window-long
    bucket or the one before, so this is one lookup on the unique key (SQLite: one query
    per 500 keys; PostgreSQL does it inside :data:`_STORE_PG`)."""
    width = window.total_seconds()
    wanted: dict[str, list[tuple[str, datetime]]] = {}
    for c in candidates:
        if c.previous is not None:
            for candidate in (c.key, c.previous):
                wanted.setdefault(candidate, []).append((c.fingerprint, c.part.received_at))
    if not wanted:
        return set()
    keys = sorted(wanted)
    rows = []
    for start in range(0, len(keys), 500):
        rows += conn.execute(select(MoPartRow.dedup_key, MoPartRow.received_at).where(
            MoPartRow.dedup_key.in_(keys[start : start + 500]))).all()  # fmt: skip
    found: set[str] = set()
    for key, stored_at in rows:
        found.update(print_ for print_, at in wanted[key]
                     if abs((at - stored_at).total_seconds()) <= width)  # fmt: skip
    return found

"""The durable MO inbox: MO parts into ``mo_parts``, exactly once per PDU, in the flusher's
transaction.

Crash-safety contract: :func:`store_parts` runs inside the transaction whose commit
resolves the future the channel waits on before it acknowledges the PDU
(:mod:`jingxin.dispatch.inbox`). A part is therefore in the database before the SMSC hears
it was received; a worker killed earlier leaves it unacknowledged and the SMSC delivers it
again. The redelivery is stored once:

* With the SMSC's id for the PDU (CMPP Msg_Id; an SMPP ``receipted_message_id``) the
  ``dedup_key`` is that id: unique, inserted with ON CONFLICT DO NOTHING.
* Without one (SMPP), only a fingerprint of what the PDU says (channel, sender, receiver,
  coding, concatenation numbers, payload) is there, and the subscriber may well send the
  same text again (``YE`` twice, a second ``Y``). An SMSC delivers a PDU again only while
  it is unacknowledged, so the inbox keeps the stored parts whose acknowledgement is not
  yet recorded (``mo_unacked``): a PDU the same as one of them, within
  ``duplicate_window``, is its redelivery; a PDU the same as an acknowledged one is new.
  The channel reports each part once its deliver_sm_resp is written on the open link
  (:class:`jingxin.dispatch.inbox.MoInbox`: ``acks``); the next flush deletes those
  parts' rows, in its own statement (or, when no part comes within the lane's flush
  interval, :func:`release` alone). A repeat that arrives before the first was
  acknowledged is taken for its redelivery (an SMSC does not send the next one sooner).
  The first copy's key is the fingerprint and its window-long bucket (a redelivery racing
  it from another worker hits the unique key and waits); a later one, after an
  acknowledgement, gets the instant it arrived appended.

Reassembly and decoding follow in the same transaction (:mod:`jingxin.dispatch.reassembly`).
Acknowledgements that lost their worker (killed before the next flush) are lost with it:
a repeat of those parts within the window is then taken for a redelivery - as before
this was counted, never the other way round.

Cost: on PostgreSQL a flush is one statement (:data:`_STORE_PG`): the acknowledged rows
deleted, the duplicates probed in ``mo_unacked`` (a small table: a part leaves it a flush
after it came), the new parts inserted and entered there, and every single-part MO
written as its message with its part already linked - the parts of long MO then go
through reassembly. On SQLite: a query of ``mo_unacked``, one of keys taken, and
``executemany`` inserts and deletes (:func:`jingxin.data.store.bulk.insert_returning`) -
no statement per part, no ORM object.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pyarrow as pa
from sqlalchemy import Connection, bindparam, delete, insert, select, text

from jingxin.data.store import bulk
from jingxin.data.store.models import MoPartRow, MoUnacked, utc_now
from jingxin.dispatch.mo_text import mo_text
from jingxin.dispatch.reassembly import Assembled, StoredPart, assemble, msisdns
from jingxin.domain.sms import MoPart

MoItem = tuple[str, MoPart]  # (channel name, part)
# An acknowledged part: (how many of the flush's items arrived before it was acknowledged,
# channel name, part) - jingxin.dispatch.inbox.Ack.
Ack = tuple[int, str, MoPart]

# The columns a flush inserts, in this order (the Arrow table handed to the bulk insert).
_SCHEMA = pa.schema([
    ("channel", pa.string()), ("protocol", pa.string()), ("source", pa.string()),
    ("destination", pa.string()), ("ref", pa.int64()), ("total", pa.int64()), ("seq", pa.int64()),
    ("coding", pa.int64()), ("payload", pa.binary()), ("smsc_id", pa.string()),
    ("fingerprint", pa.string()), ("dedup_key", pa.string()), ("received_at", bulk.US),
])  # fmt: skip


_PG_ARRAYS = ("channel", "protocol", "source", "destination", "ref", "total", "seq", "coding",
              "payload", "smsc_id", "fingerprint", "dedup_key", "received_at", "alt",
              "acked_before", "msisdn", "text", "undecodable")  # fmt: skip

# PostgreSQL: a flush in one statement whatever its size (arrays, so it is prepared once).
# ``v``: the flush's parts, with the message of each single-part one (msisdn, text) already
# decoded; ``gone``: the rows of parts acknowledged since the last flush (``released``:
# fingerprint, and the instant the acknowledged PDU came - later rows stay), found through
# the index (``= ANY``: a join on the table alone was planned as a scan of it, dead rows and
# all, on every flush); ``fresh``: the
# parts with an SMSC id, and those without one that repeat no unacknowledged part within
# the duplicate window (those acknowledged in this very flush, which ``gone`` deletes but
# this snapshot still shows, are told by ``acked_before``), each with its key - the
# bucket's, or with its instant appended when that is taken or it follows an
# acknowledgement - and each single one given its message id at once; ``p``: the insert,
# a conflict (a racing redelivery) skipped; ``u``: the new parts without an SMSC id, as
# unacknowledged; ``m``: the message of every single-part one that went in, its part
# already pointing at it (the foreign key is checked at the end of the statement, when
# both rows are there). The parts of long MO go in unlinked and wait for reassembly.
_STORE_PG = text("""
WITH v AS (
    SELECT * FROM unnest(
        CAST(:channel AS TEXT[]), CAST(:protocol AS TEXT[]), CAST(:source AS TEXT[]),
        CAST(:destination AS TEXT[]), CAST(:ref AS BIGINT[]), CAST(:total AS BIGINT[]),
        CAST(:seq AS BIGINT[]), CAST(:coding AS BIGINT[]), CAST(:payload AS BYTEA[]),
        CAST(:smsc_id AS TEXT[]), CAST(:fingerprint AS TEXT[]), CAST(:dedup_key AS TEXT[]),
        CAST(:received_at AS TIMESTAMPTZ[]), CAST(:alt AS TEXT[]),
        CAST(:acked_before AS TIMESTAMPTZ[]), CAST(:msisdn AS TEXT[]), CAST(:text AS TEXT[]),
        CAST(:undecodable AS BOOLEAN[])
    ) AS v(channel, protocol, source, destination, ref, total, seq, coding, payload, smsc_id,
           fingerprint, dedup_key, received_at, alt, acked_before, msisdn, text, undecodable)
), gone AS (
    DELETE FROM mo_unacked u
    USING unnest(CAST(:released AS TEXT[]), CAST(:released_at AS TIMESTAMPTZ[])) AS r(fingerprint, at)
    WHERE u.fingerprint = ANY(CAST(:released AS TEXT[]))
      AND u.fingerprint = r.fingerprint AND u.received_at <= r.at
), fresh AS MATERIALIZED (
    SELECT v.*, CASE WHEN v.alt IS NOT NULL AND (v.acked_before IS NOT NULL OR EXISTS (
                    SELECT 1 FROM mo_parts r WHERE r.dedup_key = v.dedup_key))
                THEN v.alt ELSE v.dedup_key END AS final,
           CASE WHEN v.msisdn IS NOT NULL THEN nextval('mo_messages_id_seq') END AS mo
    FROM v
    WHERE v.alt IS NULL OR NOT EXISTS (
        SELECT 1 FROM mo_unacked u WHERE u.fingerprint = v.fingerprint
        AND u.received_at BETWEEN v.received_at - :window AND v.received_at + :window
        AND (v.acked_before IS NULL OR u.received_at > v.acked_before))
), p AS (
    INSERT INTO mo_parts (channel, protocol, source, destination, ref, total, seq, coding,
                          payload, smsc_id, fingerprint, dedup_key, received_at, mo_id)
    SELECT channel, protocol, source, destination, ref, total, seq, coding, payload, smsc_id,
           fingerprint, final, received_at, mo
    FROM fresh
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, dedup_key, mo_id, fingerprint, received_at, smsc_id
), u AS (
    INSERT INTO mo_unacked (fingerprint, part_id, received_at)
    SELECT fingerprint, id, received_at FROM p WHERE smsc_id IS NULL
), m AS (
    INSERT INTO mo_messages (id, channel, msisdn, service_number, text, coding, parts,
                             parts_expected, complete, undecodable, received_at, stored_at,
                             dedup_key)
    SELECT p.mo_id, f.channel, f.msisdn, left(f.destination, 21), f.text, f.coding, 1, 1, TRUE,
           f.undecodable, f.received_at, :stored_at, 'mo:' || f.channel || ':' || p.id
    FROM p JOIN fresh f ON f.final = p.dedup_key
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

# The rows of acknowledged parts (a flush without new parts; SQLite): the fingerprint, and
# the instant the acknowledged PDU came.
_RELEASE = delete(MoUnacked).where(MoUnacked.fingerprint == bindparam("f"),
                                   MoUnacked.received_at <= bindparam("at"))  # fmt: skip


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
    expire: bool = True, acks: Sequence[Ack] = (), prune: bool = False,
) -> MoTally:  # fmt: skip
    """Insert ``items`` (each once), then write a message for every group they complete.
    With ``expire`` (the worker's sweeps, and any call without items) also for every group
    anywhere whose wait is over. ``acks``: the parts acknowledged since the last call, in
    order among ``items`` (see the module's docstring). ``prune``: forget the parts
    waiting for an acknowledgement past twice the duplicate window (a part whose link
    died unanswered and that the SMSC never sent again) - a scan of ``mo_unacked``, so
    the worker asks for it every ten minutes, not every sweep."""
    tally = MoTally()
    candidates, released = _candidates(items, acks=acks, window=rules.duplicate_window)
    if conn.dialect.name == "postgresql" and candidates:
        # Single-part MO (most of them) are stored whole by this one statement; only the
        # parts of long ones are left to reassembly.
        new, tally.assembled, siblings = _insert_pg(conn, candidates=candidates, released=released,
                                                    now=now, rules=rules)  # fmt: skip
        waiting = [part for part in new if part.total > 1]
    else:
        new = _insert(conn, candidates=candidates, released=released, rules=rules)
        waiting, siblings = new, None
    if prune:  # rows no redelivery can match any more
        conn.execute(delete(MoUnacked).where(MoUnacked.received_at < now - 2 * rules.duplicate_window))
    tally.stored += len(new)
    tally.duplicates += len(items) - len(new)
    tally.assembled += assemble(conn, new=waiting, now=now, part_timeout=rules.part_timeout,
                                expire=expire or not items, siblings=siblings)  # fmt: skip
    return tally


def release(conn: Connection, *, acks: Sequence[Ack]) -> int:
    """Record ``acks`` on their own (the MO lane in a quiet moment: no part to ride with),
    so that another worker bound to the same account soon sees them too; how many."""
    _release(conn, [(fingerprint(channel, part), part.received_at) for _, channel, part in acks])
    return len(acks)


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

    key: str  # its dedup_key (without an SMSC id: the fingerprint's bucket)
    alt: str | None  # without an SMSC id: the key if the bucket's is taken (None: an SMSC id)
    part: StoredPart
    smsc_id: str | None
    fingerprint: str
    acked_before: datetime | None  # the latest acknowledged PDU like it came then (in this flush)


def _candidates(items: Sequence[MoItem], *, acks: Sequence[Ack], window: timedelta,
                ) -> tuple[list[_Candidate], list[tuple[str, datetime]]]:  # fmt: skip
    """``items`` without the repeats inside the flush (the same SMSC id; the same
    fingerprint with no acknowledgement of it in between), as they will be stored; and
    what ``acks`` release (fingerprint, instant the acknowledged PDU came)."""
    out: list[_Candidate] = []
    ids: set[str] = set()
    unsettled: set[str] = set()  # fingerprints of this flush's copies not yet acknowledged
    acked: dict[str, datetime] = {}  # fingerprint → when the latest acknowledged one came
    released: list[tuple[str, datetime]] = []
    pending = collections.deque(acks)  # in the order they came (their positions never fall)

    def acknowledged(until: float) -> None:
        while pending and pending[0][0] <= until:
            _, ack_channel, ack_part = pending.popleft()
            print_, at = fingerprint(ack_channel, ack_part), ack_part.received_at
            released.append((print_, at))
            if acked.get(print_, at) <= at:
                acked[print_] = at
            # The SMSC heard OK for this text: the copies that came before are settled (one
            # was its redelivery), so the next is new.
            unsettled.discard(print_)

    for position, (channel, part) in enumerate(items):
        acknowledged(position)
        print_ = fingerprint(channel, part)
        key = dedup_key(channel, part, print_, window)
        if part.smsc_id:
            if key in ids:
                continue
            ids.add(key)
            alt = None
        else:
            if print_ in unsettled:
                continue  # the same PDU again before it was acknowledged
            unsettled.add(print_)
            alt = f"{key}:{int(part.received_at.timestamp() * 1_000_000)}"
        single = is_single(part)
        stored = StoredPart(0, channel, part.protocol, part.source[:32], part.destination[:32],
                            None if single else part.ref, 1 if single else part.total,
                            1 if single else part.seq, part.coding, part.payload, part.received_at)  # fmt: skip
        out.append(_Candidate(key, alt, stored, part.smsc_id, print_,
                              acked.get(print_) if alt else None))  # fmt: skip
    acknowledged(float("inf"))
    return out, released


def _release(conn: Connection, released: list[tuple[str, datetime]]) -> None:
    """Delete the rows of acknowledged parts (their redeliveries are over)."""
    if released:
        conn.execute(_RELEASE, [{"f": print_, "at": at} for print_, at in released])


def _insert(conn: Connection, *, candidates: list[_Candidate], released: list[tuple[str, datetime]],
            rules: InboxRules) -> list[StoredPart]:  # fmt: skip
    """The parts of ``candidates`` that were new, with their ids (a lookup of unacknowledged
    parts and one of keys taken; one bulk insert), after the ``released`` rows went."""
    if not candidates:
        _release(conn, released)
        return []
    repeated = _unacked(conn, candidates=candidates, window=rules.duplicate_window)
    fresh = [c for i, c in enumerate(candidates) if i not in repeated]
    taken = _taken(conn, [c.key for c in fresh if c.alt is not None and c.acked_before is None])
    _release(conn, released)  # after the probe, as in PostgreSQL's one statement
    keys: dict[str, _Candidate] = {}
    columns: list[list] = [[] for _ in _SCHEMA]
    for c in fresh:
        key = c.alt if c.alt is not None and (c.acked_before is not None or c.key in taken) else c.key
        keys[key] = c
        for column, value in zip(columns, (*c.part[1:10], c.smsc_id, c.fingerprint, key, c.part.received_at),
                                 strict=True):  # fmt: skip
            column.append(value)
    if not keys:
        return []
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, _SCHEMA, strict=True)],
                                 schema=_SCHEMA)  # fmt: skip
    returned = bulk.insert_returning(conn, into="mo_parts", table=table, key="dedup_key",
                                     returning=("id", "dedup_key"))  # fmt: skip
    unacked = [{"fingerprint": keys[key].fingerprint, "part_id": part_id,
                "received_at": keys[key].part.received_at}
               for part_id, key in returned if keys[key].alt is not None]  # fmt: skip
    if unacked:
        conn.execute(insert(MoUnacked), unacked)
    return [keys[key].part._replace(id=part_id) for part_id, key in returned]


def _insert_pg(conn: Connection, *, candidates: list[_Candidate], released: list[tuple[str, datetime]],
               now: datetime, rules: InboxRules,
               ) -> tuple[list[StoredPart], list[Assembled], list[StoredPart]]:  # fmt: skip
    """PostgreSQL: the parts of ``candidates`` that were new, with their ids, the messages
    of the single-part ones among them, and the parts of long MO stored before that still
    wait, from the senders of the new long parts (their siblings, for reassembly) - one
    statement (:data:`_STORE_PG`)."""
    singles = [c for c in candidates if c.part.total <= 1]
    senders = iter(msisdns([c.part.source for c in singles]))
    arrays: dict[str, list] = {name: [] for name in _PG_ARRAYS}
    unreadable: list[bool | None] = []
    senders_of: list[str | None] = []
    for c in candidates:
        part = c.part
        msisdn = text_ = undecodable = None
        if part.total <= 1:
            msisdn = next(senders)
            text_, undecodable = mo_text(protocol=part.protocol, coding=part.coding, payload=part.payload)
        unreadable.append(undecodable)
        senders_of.append(msisdn)
        row = (*part[1:10], c.smsc_id, c.fingerprint, c.key, part.received_at, c.alt,
               c.acked_before, msisdn, text_, undecodable)  # fmt: skip
        for name, value in zip(_PG_ARRAYS, row, strict=True):
            arrays[name].append(value)
    stored_at = max(now, utc_now())  # the wall clock, just before the commit
    returned = conn.execute(_STORE_PG, {**arrays, "window": rules.duplicate_window, "stored_at": stored_at,
                                        "released": [print_ for print_, _ in released],
                                        "released_at": [at for _, at in released]}).all()  # fmt: skip
    by_key: dict[str, int] = {}
    for i, c in enumerate(candidates):  # the key it went in with: the bucket's (the first such), or its own
        by_key.setdefault(c.key, i)
        if c.alt is not None:
            by_key[c.alt] = i
    new, assembled, siblings = [], [], []
    for part_id, key, mo_id, *waiting in returned:
        if key is None:  # a sibling stored before (text SQL: its instant as the session's zone)
            siblings.append(StoredPart(part_id, *waiting[:-1], waiting[-1].astimezone(UTC)))
            continue
        i = by_key[key]
        part = candidates[i].part._replace(id=part_id)
        new.append(part)
        if mo_id is not None:
            assembled.append(Assembled(mo_id, part.channel, True, bool(unreadable[i]), part.received_at,
                                       senders_of[i]))  # fmt: skip
    return new, assembled, siblings


def _unacked(conn: Connection, *, candidates: list[_Candidate], window: timedelta) -> set[int]:
    """The positions in ``candidates`` of the parts without an SMSC id that repeat an
    unacknowledged part stored within ``window`` of them (SQLite: one query per 500
    fingerprints; PostgreSQL does it inside :data:`_STORE_PG`)."""
    width = window.total_seconds()
    wanted: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        if c.alt is not None:
            wanted.setdefault(c.fingerprint, []).append(i)
    prints = sorted(wanted)
    found: set[int] = set()
    for start in range(0, len(prints), 500):
        rows = conn.execute(select(MoUnacked.fingerprint, MoUnacked.received_at).where(
            MoUnacked.fingerprint.in_(prints[start : start + 500]))).all()  # fmt: skip
        for print_, stored_at in rows:
            for i in wanted[print_]:
                c = candidates[i]
                if abs((c.part.received_at - stored_at).total_seconds()) <= width and (
                        c.acked_before is None or stored_at > c.acked_before):  # fmt: skip
                    found.add(i)
    return found


def _taken(conn: Connection, keys: list[str]) -> set[str]:
    """Which of ``keys`` a stored part already has (one query per 500)."""
    taken: set[str] = set()
    unique = sorted(set(keys))
    for start in range(0, len(unique), 500):
        taken.update(conn.execute(select(MoPartRow.dedup_key).where(
            MoPartRow.dedup_key.in_(unique[start : start + 500]))).scalars())  # fmt: skip
    return taken

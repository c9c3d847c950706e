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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from jingxin.data.store.models import MoPartRow
from jingxin.dispatch.reassembly import Assembled, assemble
from jingxin.domain.sms import MoPart

MoItem = tuple[str, MoPart]  # (channel name, part)


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
    conn: Connection, *, items: Sequence[MoItem], now: datetime, rules: InboxRules
) -> MoTally:
    """Insert ``items`` (each once), then assemble every group that is whole or expired."""
    tally = MoTally()
    if items:
        _insert(conn, items=items, rules=rules, tally=tally)
    tally.assembled = assemble(conn, now=now, part_timeout=rules.part_timeout)
    return tally


def _insert(conn: Connection, *, items: Sequence[MoItem], rules: InboxRules, tally: MoTally) -> None:
    prints = [fingerprint(channel, part) for channel, part in items]
    seen = _recent(conn, prints=[p for p, (_, part) in zip(prints, items, strict=True) if not part.smsc_id],
                   since=min(part.received_at for _, part in items) - rules.duplicate_window)  # fmt: skip
    statement = _insert_ignoring(conn.dialect.name)
    for print_, (channel, part) in zip(prints, items, strict=True):
        if not part.smsc_id and print_ in seen:
            tally.duplicates += 1
            continue
        single = part.total is None or part.total <= 1 or part.seq is None
        result = conn.execute(statement, {
            "channel": channel, "protocol": part.protocol, "source": part.source[:32],
            "destination": part.destination[:32], "ref": None if single else part.ref,
            "total": 1 if single else part.total, "seq": 1 if single else part.seq,
            "coding": part.coding, "payload": part.payload, "smsc_id": part.smsc_id,
            "fingerprint": print_, "dedup_key": dedup_key(channel, part, print_, rules.duplicate_window),
            "received_at": part.received_at,
        })  # fmt: skip
        if result.rowcount == 1:
            tally.stored += 1
            seen.add(print_)
        else:
            tally.duplicates += 1


def _recent(conn: Connection, *, prints: list[str], since: datetime) -> set[str]:
    if not prints:
        return set()
    from jingxin.data.store import bulk

    found: set[str] = set()
    wanted = sorted(set(prints))
    for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
        query = select(MoPartRow.fingerprint).where(
            bulk.among(conn, MoPartRow.fingerprint, wanted[start : start + 500]),
            MoPartRow.received_at >= since,
        )
        found.update(conn.execute(query).scalars())
    return found


def _insert_ignoring(dialect: str):
    from sqlalchemy.dialects import postgresql, sqlite

    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return make(MoPartRow).on_conflict_do_nothing(index_elements=["dedup_key"])

"""Receipts back into states: matched by SMSC id to the message *and* the part.

:func:`apply_receipts` takes a batch of (channel, :class:`DeliveryReceipt`) and, in the
caller's transaction:

1. finds the part each receipt is for (``message_parts.smsc_id`` on that channel) and sets
   the part's state - once: a repeated final receipt changes nothing and is not logged
   again (SMSCs re-deliver receipts whose acknowledgement they never got);
2. keeps a receipt whose id no part carries yet in ``unmatched_receipts`` - the receipt
   may simply have beaten the submit response to the database; it is never dropped;
3. finishes a message when every one of its parts has a final receipt: ``delivered`` if
   all were delivered, else the state of the first part that was not.

:func:`reconcile` matches kept-aside receipts whose ids have since been recorded; the
worker calls it right after recording submits, and on a timer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from jingxin.data.store.bulk import among, probe
from jingxin.data.store.models import Message, MessagePart, Receipt, UnmatchedReceipt
from jingxin.dispatch.outbox import json_rows
from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus

PART_STATE = {
    ReceiptStatus.DELIVERED: "delivered",
    ReceiptStatus.UNDELIVERABLE: "undeliverable",
    ReceiptStatus.EXPIRED: "expired",
    ReceiptStatus.DELETED: "expired",
    ReceiptStatus.REJECTED: "rejected",
    ReceiptStatus.UNKNOWN: "failed",
}  # ACCEPTD and ENROUTE are interim: recorded, no state change
WORST_FIRST = ("rejected", "undeliverable", "expired", "failed")
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Finished:
    """A message that reached its final state through receipts."""

    message_id: int
    msisdn: str
    state: str
    error_code: str | None


@dataclass
class ReceiptOutcome:
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    finished: list[Finished] = field(default_factory=list)
    latencies: list[tuple[str, float]] = field(
        default_factory=list
    )  # (channel, seconds)


def apply_receipts(
    conn: Connection, *, receipts: Sequence[tuple[str, DeliveryReceipt]], now: datetime,
    keep_unmatched: bool = True,
) -> ReceiptOutcome:  # fmt: skip
    """Apply ``receipts``; see the module docstring. Returns what happened, for metrics."""
    outcome = ReceiptOutcome()
    touched: set[int] = set()
    for start in range(0, len(receipts), CHUNK):
        chunk = receipts[start : start + CHUNK]
        parts = _parts_for(conn, chunk)
        part_rows, receipt_rows, stray = [], [], []
        for channel, receipt in chunk:
            part = parts.get((channel, receipt.message_id))
            if part is None:
                stray.append(_stray_row(channel, receipt, now))
                continue
            part_id, message_id, state, submitted_at = part
            outcome.matched += 1
            new_state = PART_STATE.get(receipt.status)
            if new_state is not None and state != "submitted":
                # Final already: an SMSC re-delivering an unacknowledged receipt (or one
                # it sends twice). Nothing changes, not even the receipts log.
                outcome.duplicates += 1
                continue
            receipt_rows.append(_receipt_row(message_id, receipt, now))
            if new_state is None:
                continue
            parts[(channel, receipt.message_id)] = (
                part_id,
                message_id,
                new_state,
                submitted_at,
            )
            part_rows.append({"pid": part_id, "st": new_state, "err": receipt.error_code,
                              "at": receipt.received_at or now})  # fmt: skip
            touched.add(message_id)
            if submitted_at is not None:
                latency = ((receipt.received_at or now) - submitted_at).total_seconds()
                outcome.latencies.append((channel, latency))
        _write(conn, part_rows, receipt_rows, stray if keep_unmatched else [])
        outcome.unmatched += len(stray)
    outcome.finished = _finish(conn, touched, now) if touched else []
    return outcome


def _parts_for(conn: Connection, chunk: Sequence[tuple[str, DeliveryReceipt]]) -> dict:
    ids = list({receipt.message_id for _, receipt in chunk})
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_parts_by_smsc_id_pg(), {"ids": ids})
    else:
        rows = conn.execute(select(
            MessagePart.channel, MessagePart.smsc_id, MessagePart.id, MessagePart.message_id,
            MessagePart.state, MessagePart.submitted_at,
        ).where(among(conn, MessagePart.smsc_id, ids)))  # fmt: skip
    return {(ch, sid): (pid, mid, st, at) for ch, sid, pid, mid, st, at in rows}


@functools.cache
def _parts_by_smsc_id_pg() -> Any:
    """PostgreSQL: the parts of a batch's SMSC ids (``:ids``), one probe of the SMSC id
    index per id whatever the statistics say (:func:`~jingxin.data.store.bulk.probe`). As
    a semi-join on the array, the worker's kept plan scanned message_parts whole for every
    receipt batch: 25.6-28.6 ms a call at 300,000 parts in `bench dispatch-drain-pg`.
    Built once."""
    parts, keys = probe(MessagePart.__table__,
                        {"smsc_id": bindparam("ids", type_=ARRAY(String()))}, name="parts")  # fmt: skip
    return select(parts.c.channel, parts.c.smsc_id, parts.c.id, parts.c.message_id,
                  parts.c.state, parts.c.submitted_at).select_from(keys)  # fmt: skip


def _stray_row(channel: str, receipt: DeliveryReceipt, now: datetime) -> dict:
    return {
        "channel": channel, "smsc_id": receipt.message_id, "status": receipt.status.value,
        "error_code": receipt.error_code, "raw": receipt.raw,
        "received_at": receipt.received_at or now, "attempts": 0,
    }  # fmt: skip


def _receipt_row(message_id: int, receipt: DeliveryReceipt, now: datetime) -> dict:
    return {
        "message_id": message_id, "smsc_message_id": receipt.message_id,
        "status": receipt.status.value, "error_code": receipt.error_code,
        "received_at": receipt.received_at or now, "raw": receipt.raw,
    }  # fmt: skip


# PostgreSQL: one statement per batch over json_to_recordset (see outbox.json_rows).
#
# The receipts' updates by id (this one and _FINISH_PG) read their rows through the primary
# key whatever the statistics say: ``id = ANY(ARRAY(<the batch's ids, from its JSON>))``
# gives the planner that path (it cannot count the array, and takes it for a few rows),
# and the state is checked as ``IS NOT DISTINCT FROM`` (the same on a NOT NULL column),
# which no index serves - so it filters the rows found, and is still re-checked on a row
# another transaction changed meanwhile. With ``state = 'submitted'`` the finish read
# every message waiting for its receipt through the claim's index whenever the last
# ANALYZE had seen few: 2.4-5.1x slower per batch with 5,000-50,000 waiting (`jingxin
# bench receipt-updates`). The parts' update, planned on a young table, scanned
# message_parts whole for every batch (5.8-7.4 ms at 15,000 parts in `bench mo-inbox`).
# The submit write-back (outbox._SUBMITTED_PG) keeps the plain join: the rows in
# 'submitting' are at most a worker's messages in flight.
_PARTS_PG = text("""
    UPDATE message_parts AS p SET state = v.st, error_code = v.err, receipt_at = v.at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(pid bigint, st text, err text, at timestamptz)
    WHERE p.id = v.pid
        AND p.id = ANY(ARRAY(SELECT (e->>'pid')::bigint FROM json_array_elements(CAST(:rows AS json)) e))
        AND p.state IS NOT DISTINCT FROM 'submitted'
""")
_RECEIPTS_PG = text("""
    INSERT INTO receipts (message_id, smsc_message_id, status, error_code, received_at, raw)
    SELECT message_id, smsc_message_id, status, error_code, received_at, raw
    FROM json_to_recordset(CAST(:rows AS json)) AS v(message_id bigint, smsc_message_id text,
        status text, error_code text, received_at timestamptz, raw text)
""")
_FINISH_PG = text("""
    UPDATE messages AS m SET state = v.st, error_code = v.err, finished_at = :now,
        updated_at = :now
    FROM json_to_recordset(CAST(:rows AS json)) AS v(mid bigint, st text, err text)
    WHERE m.id = v.mid
        AND m.id = ANY(ARRAY(SELECT (e->>'mid')::bigint FROM json_array_elements(CAST(:rows AS json)) e))
        AND m.state IS NOT DISTINCT FROM 'submitted'
""")


def _write(conn: Connection, part_rows: list, receipt_rows: list, stray: list) -> None:
    if conn.dialect.name == "postgresql":
        if part_rows:
            conn.execute(_PARTS_PG, {"rows": json_rows(part_rows)})
        if receipt_rows:
            conn.execute(_RECEIPTS_PG, {"rows": json_rows(receipt_rows)})
        if stray:
            conn.execute(insert(UnmatchedReceipt), stray)
        return
    if part_rows:
        conn.execute(
            update(MessagePart)
            .where(MessagePart.id == bindparam("pid"), MessagePart.state == "submitted")
            .values(state=bindparam("st"), error_code=bindparam("err"), receipt_at=bindparam("at")),
            part_rows,
        )  # fmt: skip
    if receipt_rows:
        conn.execute(insert(Receipt), receipt_rows)
    if stray:
        conn.execute(insert(UnmatchedReceipt), stray)


def _finish(
    conn: Connection, message_ids: Iterable[int], now: datetime
) -> list[Finished]:
    ids = sorted(message_ids)
    query = (
        select(
            Message.id,
            Message.msisdn,
            Message.parts,
            MessagePart.state,
            MessagePart.error_code,
        )
        .join(MessagePart, MessagePart.message_id == Message.id)
        .where(among(conn, Message.id, ids), Message.state == "submitted")
        .order_by(Message.id, MessagePart.part_no)
    )
    grouped: dict[int, list] = {}
    for mid, msisdn, parts, state, code in conn.execute(query):
        grouped.setdefault(mid, [msisdn, parts, []])[2].append((state, code))
    finished = []
    for mid, (msisdn, parts, states) in grouped.items():
        if len(states) < parts or any(s == "submitted" for s, _ in states):
            continue
        state, code = final_of(states)
        finished.append(Finished(mid, msisdn, state, code))
    if finished and conn.dialect.name == "postgresql":
        conn.execute(_FINISH_PG, {"now": now, "rows": json_rows([
            {"mid": f.message_id, "st": f.state, "err": f.error_code} for f in finished
        ])})  # fmt: skip
    elif finished:
        conn.execute(
            update(Message)
            .where(Message.id == bindparam("mid"), Message.state == "submitted")
            .values(state=bindparam("st"), error_code=bindparam("err"), finished_at=now,
                    updated_at=now),
            [{"mid": f.message_id, "st": f.state, "err": f.error_code} for f in finished],
        )  # fmt: skip
    return finished


def final_of(states: Sequence[tuple[str, str | None]]) -> tuple[str, str | None]:
    """The message's final state from its parts': all delivered, or the worst part's."""
    for worst in WORST_FIRST:
        for state, code in states:
            if state == worst:
                return state, code
    return "delivered", None


def reconcile(conn: Connection, *, now: datetime, limit: int = 5_000) -> ReceiptOutcome:
    """Match kept-aside receipts whose SMSC ids have since been recorded."""
    known = select(MessagePart.id).where(
        and_(MessagePart.smsc_id == UnmatchedReceipt.smsc_id,
             MessagePart.channel == UnmatchedReceipt.channel)
    ).exists()  # fmt: skip
    rows = conn.execute(
        select(UnmatchedReceipt.id, UnmatchedReceipt.channel, UnmatchedReceipt.smsc_id,
               UnmatchedReceipt.status, UnmatchedReceipt.error_code, UnmatchedReceipt.raw,
               UnmatchedReceipt.received_at)
        .where(UnmatchedReceipt.matched_at.is_(None), known)
        .order_by(UnmatchedReceipt.id).limit(limit)
    ).all()  # fmt: skip
    if not rows:
        return ReceiptOutcome()
    receipts = [
        (ch, DeliveryReceipt(sid, ReceiptStatus(st), code, raw=raw, received_at=at))
        for _, ch, sid, st, code, raw, at in rows
    ]
    outcome = apply_receipts(conn, receipts=receipts, now=now, keep_unmatched=False)
    conn.execute(
        update(UnmatchedReceipt).where(UnmatchedReceipt.id == bindparam("uid")).values(matched_at=now),
        [{"uid": row[0]} for row in rows],
    )  # fmt: skip
    return outcome

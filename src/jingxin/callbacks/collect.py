"""What to push: new receipts and MO of tenants with an endpoint, queued as deliveries.

:func:`collect` reads what was added to ``receipts`` and ``mo_outcomes`` since its mark
and enqueues one ``callback_deliveries`` row per event, keyed ``receipt:<receipt id>`` /
``mo:<MO id>`` (``INSERT ... ON CONFLICT (event_key) DO NOTHING``, in bulk): collecting
again, after a crash or from two processes at once, enqueues nothing twice.

- a **receipt** goes to the tenant of the message it was matched to, if that tenant's
  endpoint is enabled and takes ``receipt``; every receipt the dispatcher logged is one
  event (interim ones such as ``ACCEPTD`` too: ``status`` says which);
- an **MO** goes to the tenant of the message it answers (the attribution the handlers
  recorded in ``mo_outcomes``: :mod:`jingxin.dispatch.attribution`), if that endpoint takes
  ``mo``. An MO attributed to no message is nobody's callback. An MO is collected once
  the handlers have run for it (the worker runs them right after the MO is stored).

Marks are the event collector's (``event_marks``, names ``callbacks:receipts`` and
``callbacks:mo``; :mod:`jingxin.analytics.events` explains them): a step's deliveries and
its mark commit in one transaction; rows younger than :data:`SETTLE` are read again next
time, since on PostgreSQL an id is taken at insert but seen at commit. Events of a tenant
are collected from when its endpoint exists: setting a URL does not replay the past.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, literal, select

from jingxin.analytics.event_sources import read_mark, set_mark
from jingxin.callbacks.queue import queue_deliveries
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import (
    CallbackEndpoint,
    Message,
    MessagePart,
    MoMessage,
    MoOutcome,
    Receipt,
    utc_now,
)
from jingxin.dispatch.receipts import PART_STATE
from jingxin.domain.sms import ReceiptStatus

SETTLE = timedelta(seconds=60)  # rows younger than this are read again next pass
SPAN = 5_000  # ids read per transaction
API_KEY_PREFIX = "api:"  # messages.idempotency_key of the API's sends: api:<tenant>:<key>

# The status a receipt reports, in the words of message states (interim ones as such).
STATUS = {status.value: state for status, state in PART_STATE.items()} | {
    ReceiptStatus.ACCEPTED.value: "accepted", ReceiptStatus.ENROUTE.value: "enroute"}


def collect(store: Store, *, now: datetime | None = None,
            settle: timedelta = SETTLE) -> Counter[str]:  # fmt: skip
    """Enqueue every new receipt and MO for the tenants that want them; the count of new
    deliveries per kind."""
    now = now or utc_now()
    counts: Counter[str] = Counter()
    for kind, name, source in STEPS:
        counts[kind] += _step(store, name=name, source=source, now=now, settle=settle)
    return +counts


def client_key(idempotency_key: str | None, tenant_id: str) -> str | None:
    """The key the client gave the API (``api:<tenant>:<key>`` → ``<key>``), else None."""
    prefix = f"{API_KEY_PREFIX}{tenant_id}:"
    if idempotency_key and idempotency_key.startswith(prefix):
        return idempotency_key[len(prefix):]
    return None


def _step(store: Store, *, name: str, source: Source, now: datetime, settle: timedelta) -> int:
    """One source from its mark to its newest row, :data:`SPAN` ids per transaction."""
    id_column, at_column, read = source
    with store_errors(f"collecting callbacks ({name})"), store.transaction() as session:
        conn = session.connection()
        cursor, top = read_mark(conn, name), conn.scalar(select(func.max(id_column)))
    added, held = 0, None
    while top is not None and cursor < top:
        upto = min(top, cursor + SPAN)
        with store_errors(f"collecting callbacks ({name})"), store.transaction() as session:
            conn = session.connection()
            added += queue_deliveries(conn, read(conn, cursor, upto), now)
            young = conn.scalar(select(func.min(id_column)).where(
                id_column > cursor, id_column <= upto, at_column > now - settle))  # fmt: skip
            held = young if held is None else held
            set_mark(conn, name, upto if held is None else held - 1, now)
        cursor = upto
    return added


def _wants(kind: str) -> Any:
    """The join condition: the message's tenant has an enabled endpoint taking ``kind``."""
    e = CallbackEndpoint
    listed = (literal(",") + e.kinds + literal(",")).like(f"%,{kind},%")
    return and_(e.tenant_id == Message.tenant_id, e.enabled.is_(True), listed)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# ----------------------------------------------------------------------------- receipts


def _receipts(conn: Connection, start: int, upto: int) -> list[dict[str, Any]]:
    r, m, p = Receipt, Message, MessagePart
    rows = conn.execute(
        select(r.id, r.status, r.error_code, r.received_at, m.id.label("message_id"),
               m.tenant_id, m.idempotency_key, m.msisdn, m.parts, m.submitted_at,
               p.part_no, p.submitted_at.label("part_submitted_at"))
        .select_from(r)
        .join(m, m.id == r.message_id)
        .join(CallbackEndpoint, _wants("receipt"))
        .outerjoin(p, and_(p.message_id == r.message_id, p.smsc_id == r.smsc_message_id))
        .where(r.id > start, r.id <= upto)
        .order_by(r.id)).all()  # fmt: skip
    return [{
        "tenant_id": row.tenant_id, "kind": "receipt", "event_key": f"receipt:{row.id}",
        "payload": {
            "receipt_id": row.id, "message_id": row.message_id,
            "idempotency_key": client_key(row.idempotency_key, row.tenant_id),
            "msisdn": row.msisdn, "status": STATUS.get(row.status, row.status.lower()),
            "smsc_status": row.status, "error_code": row.error_code,
            "part": row.part_no, "parts": row.parts,
            "submitted_at": _iso(row.part_submitted_at or row.submitted_at),
            "done_at": _iso(row.received_at),
        },
    } for row in rows]  # fmt: skip


# ----------------------------------------------------------------------------- MO


def _mo(conn: Connection, start: int, upto: int) -> list[dict[str, Any]]:
    o, mo, m = MoOutcome, MoMessage, Message
    rows = conn.execute(
        select(mo.id, mo.msisdn, mo.service_number, mo.text, mo.received_at, mo.complete,
               m.id.label("message_id"), m.tenant_id, m.idempotency_key)
        .select_from(o)
        .join(mo, mo.id == o.mo_id)
        .join(m, m.id == o.message_id)
        .join(CallbackEndpoint, _wants("mo"))
        .where(o.id > start, o.id <= upto)
        .order_by(o.id)).all()  # fmt: skip
    return [{
        "tenant_id": row.tenant_id, "kind": "mo", "event_key": f"mo:{row.id}",
        "payload": {
            "mo_id": row.id, "msisdn": row.msisdn, "service_number": row.service_number,
            "text": row.text, "complete": row.complete, "received_at": _iso(row.received_at),
            "in_reply_to": row.message_id,
            "in_reply_to_idempotency_key": client_key(row.idempotency_key, row.tenant_id),
        },
    } for row in rows]  # fmt: skip


# (id column, time column for the settle margin, reader of an id range)
Source = tuple[Any, Any, Callable[[Connection, int, int], list[dict[str, Any]]]]
STEPS: tuple[tuple[str, str, Source], ...] = (
    ("receipt", "callbacks:receipts", (Receipt.id, Receipt.received_at, _receipts)),
    ("mo", "callbacks:mo", (MoOutcome.id, MoOutcome.handled_at, _mo)),
)

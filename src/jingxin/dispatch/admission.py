"""Admission: policy decides the delivery entry's candidates, and what it admits is written.

- :func:`admit_one` (the single-message path of :func:`jingxin.dispatch.deliver.deliver_one`):
  the number's contact state as of ``now`` (:func:`~jingxin.data.store.policy_state.load_one`,
  one statement), :func:`jingxin.policy.decide.decide`, then the outbox row, the ledger row
  and the decision row through their tables' one insert paths, in one transaction.
- :func:`decide_chunk` (the bulk path): a chunk is decided exactly as ``jingxin policy
  batch`` decides - :func:`~jingxin.data.store.policy_state.load_batch` (state as of the
  decision time, and the ledger rows the caps can reach), then
  :func:`jingxin.policy.batch.decide_batch`.
- :func:`contact_rows`: the ledger rows of admitted messages, each on the local date of
  its send instant.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.data.store.engine import Store, store_errors

if TYPE_CHECKING:
    from jingxin.dispatch.deliver import Delivered, Delivery
    from jingxin.policy.config import PolicyConfig

TS = pa.timestamp("us", tz="UTC")


def admit_one(store: Store, *, delivery: Delivery, msisdn: str, text: str, parts: int,
              config: PolicyConfig, now: datetime) -> Delivered:  # fmt: skip
    """Decide one rendered delivery and write it, in one transaction on one connection
    (see :mod:`jingxin.dispatch.deliver` for the contract): one statement reads the
    number's state and the key's earlier message, then one plain ``INSERT`` each for the
    outbox row, the ledger row and the decision row."""
    from jingxin.data.store.policy_state import load_one
    from jingxin.dispatch.deliver import Delivered, campaign_id_of, existing_message
    from jingxin.domain.candidate import Candidate, Outcome
    from jingxin.policy.decide import decide

    key = delivery.idempotency_key
    campaign_id = campaign_id_of(delivery.source, delivery.source_id)
    candidate = Candidate(msisdn, delivery.tenant_id, delivery.category, delivery.source, key,
                          source_id=campaign_id, wanted_at=delivery.wanted_at)  # fmt: skip
    with store_errors(f"delivering {key}"), store.engine.begin() as conn:
        state, first = load_one(conn, msisdn=msisdn, tenant_id=delivery.tenant_id, key=key,
                                now=now)  # fmt: skip
        if first is not None:
            return Delivered("duplicate", first, None, ("duplicate",))
        decision = decide(candidate, state, now, config)
        reasons = tuple(r.value for r in decision.reasons)
        if decision.outcome == Outcome.REJECT:
            _audit_one(conn, candidate, decision, now, delivery, None)
            outcome = "duplicate" if reasons == ("duplicate",) else "rejected"
            return Delivered(outcome, None, None, reasons)
        ids = _enqueue_one(conn, delivery, msisdn, text, parts, campaign_id,
                           decision.send_at, now)  # fmt: skip
        if not ids:  # a concurrent twin took the key between our read and our insert
            return Delivered("duplicate", existing_message(conn, key), None, ("duplicate",))
        zone = _zone(state, config, delivery.tenant_id)
        _ledger_one(conn, candidate, campaign_id, decision.send_at, zone)
        _audit_one(conn, candidate, decision, now, delivery, ids[0])
    outcome = "deferred" if decision.outcome == Outcome.DEFER else "queued"
    return Delivered(outcome, ids[0], decision.send_at, reasons)


def _enqueue_one(conn, delivery: Delivery, msisdn: str, text: str, parts: int,
                 campaign_id: int | None, send_at: datetime, now: datetime) -> list[int]:  # fmt: skip
    from jingxin.dispatch.outbox_rows import insert_table

    expires = send_at + delivery.validity if delivery.validity is not None else None
    row = {"tenant_id": delivery.tenant_id, "msisdn": msisdn, "category": delivery.category,
           "text": text, "idempotency_key": delivery.idempotency_key, "parts": parts,
           "scheduled_at": send_at, "expires_at": expires, "campaign_id": campaign_id,
           "source": delivery.source, "source_id": delivery.source_id,
           "sender": delivery.sender, "arm": delivery.arm}  # fmt: skip
    return insert_table(conn, table=[row], now=now)


def _zone(state: Any, config: PolicyConfig, tenant_id: str) -> str:
    from jingxin.policy.localtime import subscriber_zone

    rules = config.rules_for(tenant_id)
    default = rules.default_timezone if rules else "Asia/Shanghai"
    return subscriber_zone(state.roaming_country, state.timezone, default)


def _ledger_one(conn, candidate: Any, campaign_id: int | None, send_at: datetime,
                zone: str) -> None:  # fmt: skip
    from jingxin.data.store.ledger import record_contact_table

    record_contact_table(conn, table=[{
        "tenant_id": candidate.tenant_id, "msisdn": candidate.msisdn,
        "category": candidate.category, "idempotency_key": candidate.idempotency_key,
        "campaign_id": campaign_id, "contact_at": send_at,
        "local_date": _local_date(send_at, zone),
    }])  # fmt: skip


def _local_date(moment: datetime, zone: str):
    from jingxin.policy.localtime import date_of_day, day_number, local_us, to_us

    return date_of_day(day_number(local_us(zone, to_us(moment))))


def _audit_one(conn, candidate: Any, decision: Any, now: datetime, delivery: Delivery,
               message_id: int | None) -> None:  # fmt: skip
    from jingxin.data.store.audit import write_decisions

    detail: dict[str, Any] = {}
    if delivery.source_id is not None:
        detail["source_id"] = delivery.source_id
    if message_id is not None:
        detail["message_id"] = message_id
    if decision.winner:
        detail["winner"] = decision.winner
    write_decisions(conn, decisions=[{
        "tenant_id": candidate.tenant_id, "msisdn": candidate.msisdn,
        "idempotency_key": candidate.idempotency_key, "source": candidate.source,
        "category": candidate.category, "outcome": decision.outcome.value,
        "send_at": decision.send_at, "reasons": decision.reason_text,
        "detail": detail or None, "decided_at": now,
    }])  # fmt: skip


# --------------------------------------------------------------------------- bulk


def decide_chunk(
    store: Store, *, candidates: pa.Table, config: PolicyConfig, now: datetime,
    timing: Callable[[str], AbstractContextManager[None]] = lambda _stage: nullcontext(),
) -> pa.Table:  # fmt: skip
    """The decision (``outcome``, ``send_at``, ``reasons``, ...) of each candidate
    (:data:`~jingxin.policy.columns.CANDIDATE_FIELDS`), in order. ``timing(stage)`` wraps
    the contact-state load (``state``) and the decision (``decide``)."""
    from jingxin.data.store.policy_state import load_batch
    from jingxin.policy.batch import decide_batch

    with timing("state"), store.sessions() as session:
        table, ledger = load_batch(session, candidates=candidates, now=now)
    with timing("decide"):
        return decide_batch(table, now=now, config=config, ledger=ledger)


def candidate_table(*, msisdns: pa.Array, tenant_id: pa.Array, category: pa.Array,
                    source: pa.Array, campaign_id: pa.Array, wanted_at: pa.Array,
                    keys: pa.Array) -> pa.Array:  # fmt: skip
    """The candidates as policy reads them (priority and score 0: a sender's order)."""
    from jingxin.policy.columns import CANDIDATE_FIELDS

    n = len(msisdns)
    columns = {
        "msisdn": msisdns, "tenant_id": tenant_id, "category": category, "source": source,
        "source_id": campaign_id, "priority": pa.array([0] * n, pa.int64()),
        "score": pa.array([0.0] * n, pa.float64()), "wanted_at": wanted_at,
        "idempotency_key": keys,
    }  # fmt: skip
    return pa.table(columns, schema=pa.schema(CANDIDATE_FIELDS))


def contact_rows(accepted: pa.Table, *, zone: str) -> pa.Table:
    """The ledger rows of ``accepted`` outbox rows: counted when accepted, not when
    delivered (for caps, over-counting a contact that then failed is the side that protects
    subscribers), on the tenant's local date of the send instant."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    when = accepted.column("scheduled_at")
    encoded = when.combine_chunks().dictionary_encode()
    days = pa.array([w.astimezone(tz).date() for w in encoded.dictionary.to_pylist()],
                    pa.date32())  # fmt: skip
    return accepted.select(["tenant_id", "msisdn", "category", "campaign_id",
                            "idempotency_key"]).append_column(
        "contact_at", when).append_column("local_date", pc.take(days, encoded.indices))  # fmt: skip


def later_of(send_at: pa.ChunkedArray | pa.Array, floor: datetime, now: datetime) -> pa.Array:
    """Each send instant (null: ``now``), but never before ``floor``."""
    filled = send_at.fill_null(pa.scalar(now, TS))
    start = pa.scalar(floor, TS).cast(pa.int64())
    return pc.max_element_wise(filled.cast(pa.int64()), start).cast(TS)


def expiries(scheduled: pa.Array, validity: timedelta) -> pa.Array:
    return pc.add(scheduled, pa.scalar(validity))

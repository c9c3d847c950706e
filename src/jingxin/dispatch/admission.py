"""Admission: policy decides the delivery entry's candidates, and what it admits is written.

- :func:`admit_one` (the single-message path of :func:`jingxin.dispatch.deliver.deliver_one`):
  the number's contact state as of ``now`` (:func:`~jingxin.data.store.policy_state.load_one`,
  one statement), :func:`jingxin.policy.decide.decide`, then the outbox row, the ledger row
  and the decision row through their tables' one insert paths: on SQLite three
  ``INSERT`` s in one transaction; on PostgreSQL ONE statement (:func:`_write_statement`,
  the three inserts composed as data-modifying ``WITH`` queries), so a delivery is two
  round trips - the read and the write - instead of seven.
- :func:`admit_many` (``deliver_many``): the same for a small batch in one transaction,
  one state load (:func:`~jingxin.data.store.policy_state.load_many`), the single form
  per candidate in input order, one multi-row insert per table - on PostgreSQL the three
  as ONE statement of one fixed text (:func:`_arrays_statement`: arrays, ``WITH``).
- :func:`decide_chunk` (the bulk path): a chunk is decided exactly as ``jingxin policy
  batch`` decides - :func:`~jingxin.data.store.policy_state.load_batch` (state as of the
  decision time, and the ledger rows the caps can reach), then
  :func:`jingxin.policy.batch.decide_batch`.
- :func:`contact_rows`: the ledger rows of admitted messages, each on the local date of
  its send instant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.data.store.engine import Store, store_errors

if TYPE_CHECKING:
    from jingxin.dispatch.deliver import Delivered, Delivery
    from jingxin.policy.config import PolicyConfig

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class Ready:
    """A delivery checked, its number normalised and its text rendered (with its short
    link's token, and the link's target): what admission needs of it."""

    delivery: Delivery
    msisdn: str
    text: str
    parts: int
    link_token: str | None = None
    link_url: str | None = None

    def candidate(self) -> Any:
        from jingxin.dispatch.deliver import campaign_id_of
        from jingxin.domain.candidate import Candidate

        d = self.delivery
        return Candidate(self.msisdn, d.tenant_id, d.category, d.source, d.idempotency_key,
                         source_id=campaign_id_of(d.source, d.source_id),
                         wanted_at=d.wanted_at)  # fmt: skip


def admit_one(store: Store, *, ready: Ready, config: PolicyConfig, now: datetime) -> Delivered:
    """Decide one rendered delivery and write it (see :mod:`jingxin.dispatch.deliver` for
    the contract): one statement reads the number's state and the key's earlier message;
    the writes are one transaction (SQLite: three plain ``INSERT`` s; PostgreSQL: one
    statement, its own transaction, so the connection runs in autocommit and no
    ``BEGIN``/``COMMIT`` round trip is paid - the read needs no transaction either: under
    READ COMMITTED each statement sees what was committed when it began, alone or not)."""
    from jingxin.data.store.policy_state import load_one

    key = ready.delivery.idempotency_key
    postgres = store.engine.dialect.name == "postgresql"
    with store_errors(f"delivering {key}"), store.autocommit() as conn:
        state, first = load_one(conn, msisdn=ready.msisdn, tenant_id=ready.delivery.tenant_id,
                                key=key, now=now)  # fmt: skip
        if first is not None:
            return _duplicate(first)
        plan = _plan(ready, state, config, now)
        if plan.message is None:
            _write_decisions(conn, [plan.decision])
        elif postgres:
            plan = plan.with_id(conn.execute(_write_statement(), plan.parameters()).scalar())
        else:
            ids = _insert_messages(conn, [plan.message], now)
            plan = plan.with_id(ids.get(key))
            if plan.message_id is not None:
                _write_contacts(conn, [plan.contact])
                _write_decisions(conn, [plan.decision])
        if plan.message is not None and plan.message_id is None:
            # a concurrent twin took the key between our read and our insert
            return _duplicate(_existing(conn, key))
    return plan.delivered


def admit_many(store: Store, *, ready: Sequence[Ready], config: PolicyConfig,
               now: datetime) -> list[Delivered]:  # fmt: skip
    """:func:`admit_one` for each of a small batch, in order, as if one after another,
    but in ONE transaction: one state load for every number, the single form per
    candidate on the state as the earlier ones of the batch left it (their contacts
    counted, their keys taken), then one multi-row insert per table."""
    from jingxin.data.store.policy_state import load_many

    pairs = [(r.msisdn, r.delivery.idempotency_key) for r in ready]
    tenants = {r.delivery.tenant_id for r in ready}
    # PostgreSQL: the read, then ONE write statement (autocommit, as admit_one: no
    # BEGIN/COMMIT round trips; the one statement is atomic on its own).
    with store_errors(f"delivering {len(ready)} messages"), \
            store.autocommit() as conn:  # fmt: skip
        states, first = load_many(conn, pairs=pairs, tenants=tenants, now=now)
        plans: list[_Plan | str] = []  # a plan, or the key of an earlier delivery it repeats
        taken = set(first)  # keys queued before, or by an earlier delivery of the batch
        for r in ready:
            key = r.delivery.idempotency_key
            if key in taken:
                plans.append(key)
                continue
            plan = _plan(r, states[r.msisdn], config, now)
            if plan.message is not None:
                states[r.msisdn] = plan.after(states[r.msisdn])
                taken.add(key)
            plans.append(plan)
        return _write_many(conn, plans, first, now)


def _write_many(conn: Any, plans: list[_Plan | str], first: dict[str, int],
                now: datetime) -> list[Delivered]:  # fmt: skip
    """The batch's rows, one multi-row insert per table, and what became of each."""
    made = [p for p in plans if isinstance(p, _Plan)]
    if conn.dialect.name == "postgresql":
        ids = _write_arrays(conn, made, now) if made else {}
        done = [p.with_id(ids.get(p.key)) if p.message is not None else p for p in made]
    else:
        ids = _insert_messages(conn, [p.message for p in made if p.message is not None], now)
        done = [p.with_id(ids.get(p.key)) if p.message is not None else p for p in made]
        written = [p for p in done if p.message is None or p.message_id is not None]
        _write_contacts(conn, [p.contact for p in written if p.message is not None])
        _write_decisions(conn, [p.decision for p in written])
    known = {**first, **ids}
    out, plan = [], iter(done)
    for p in plans:
        if isinstance(p, str):  # queued before, or earlier in this batch
            out.append(_duplicate(known.get(p) or _existing(conn, p)))
            continue
        p = next(plan)
        lost = p.message is not None and p.message_id is None  # a concurrent twin's key
        out.append(_duplicate(_existing(conn, p.key)) if lost else p.delivered)
    return out


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one delivery comes to: its decision row, and if admitted its outbox and
    ledger rows (as their insert paths take them) and, once written, its message id."""

    ready: Ready
    verdict: Any  # policy's Decision
    decision: dict[str, Any]
    message: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    message_id: int | None = None

    @property
    def key(self) -> str:
        return self.ready.delivery.idempotency_key

    @property
    def delivered(self) -> Delivered:
        from jingxin.dispatch.deliver import Delivered
        from jingxin.domain.candidate import Outcome

        reasons = tuple(r.value for r in self.verdict.reasons)
        if self.message is None:
            outcome = "duplicate" if reasons == ("duplicate",) else "rejected"
            return Delivered(outcome, None, None, reasons)
        outcome = "deferred" if self.verdict.outcome == Outcome.DEFER else "queued"
        return Delivered(outcome, self.message_id, self.verdict.send_at, reasons)

    def with_id(self, message_id: int | None) -> _Plan:
        if message_id is None:
            return self
        detail = {**(self.decision["detail"] or {}), "message_id": message_id}
        return replace(self, message_id=message_id, decision={**self.decision, "detail": detail})

    def after(self, state: Any) -> Any:
        """The number's state once this delivery's contact is in the ledger."""
        from jingxin.policy.state import ContactMark

        c = self.contact
        mark = ContactMark(c["category"], c["local_date"], c["campaign_id"], c["tenant_id"])
        return replace(state, contacts=(*state.contacts, mark))

    def parameters(self) -> dict[str, Any]:
        """The bound values of :func:`_write_statement` (the message id is the statement's)."""
        from jingxin.data.store.audit import decision_values
        from jingxin.data.store.ledger import row_values as contact_values
        from jingxin.dispatch.outbox_rows import row_values as message_values

        now = self.decision["decided_at"]
        decision = {**self.decision, "detail": self.decision["detail"] or {}}
        rows = {"m_": message_values(self.message, now=now),
                "l_": contact_values(0, self.contact, now),
                "d_": decision_values(0, decision, now)}  # fmt: skip
        return {prefix + name: value for prefix, row in rows.items() for name, value in row.items()}


def _plan(ready: Ready, state: Any, config: PolicyConfig, now: datetime) -> _Plan:
    """Policy's single form on ``state``, and the rows it asks for."""
    from jingxin.domain.candidate import Outcome
    from jingxin.policy.decide import decide

    candidate = ready.candidate()
    decision = decide(candidate, state, now, config)
    d = ready.delivery
    detail = {"source_id": d.source_id} if d.source_id is not None else {}
    if decision.winner:
        detail["winner"] = decision.winner
    audit = {"tenant_id": d.tenant_id, "msisdn": ready.msisdn, "idempotency_key": d.idempotency_key,
             "source": d.source, "category": d.category, "outcome": decision.outcome.value,
             "send_at": decision.send_at, "reasons": decision.reason_text,
             "detail": detail or None, "decided_at": now}  # fmt: skip
    if decision.outcome == Outcome.REJECT:
        return _Plan(ready, decision, audit)
    send_at = decision.send_at
    expires = send_at + d.validity if d.validity is not None else None
    message = {"tenant_id": d.tenant_id, "msisdn": ready.msisdn, "category": d.category,
               "text": ready.text, "idempotency_key": d.idempotency_key, "parts": ready.parts,
               "scheduled_at": send_at, "expires_at": expires,
               "campaign_id": candidate.source_id, "source": d.source,
               "source_id": d.source_id, "sender": d.sender, "arm": d.arm,
               "link_token": ready.link_token, "link_url": ready.link_url}  # fmt: skip
    contact = {"tenant_id": d.tenant_id, "msisdn": ready.msisdn, "category": d.category,
               "idempotency_key": d.idempotency_key, "campaign_id": candidate.source_id,
               "contact_at": send_at,
               "local_date": _local_date(send_at, _zone(state, config, d.tenant_id))}  # fmt: skip
    return _Plan(ready, decision, audit, message, contact)


@functools.cache
def _write_statement() -> Any:
    """PostgreSQL: the outbox row, its ledger row and its decision row as ONE statement,
    each table's own insert (its one insert path) composed as a data-modifying ``WITH``:
    ``WITH m AS (INSERT INTO messages ... ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key), l AS (INSERT INTO contact_ledger ... SELECT ... FROM
    m), d AS (INSERT INTO decisions ... SELECT ..., detail || {message_id: m.id} FROM m)
    SELECT id FROM m``. A key already taken inserts nothing at all (``m`` is empty) and
    answers no id; a single statement is atomic, so the three rows are there or none is."""
    from sqlalchemy import select

    from jingxin.data.store.audit import insert_decision_after
    from jingxin.data.store.ledger import insert_after
    from jingxin.dispatch.outbox_rows import insert_statement

    m = insert_statement("postgresql", prefix="m_").cte("m")
    ledger = insert_after(m, prefix="l_").cte("l")
    decision = insert_decision_after(m, prefix="d_", detail_from={"message_id": "id"}).cte("d")
    return select(m.c.id).add_cte(ledger, decision)


def _write_arrays(conn: Any, plans: list[_Plan], now: datetime) -> dict[str, int]:
    """PostgreSQL: a batch's outbox, ledger and decision rows as ONE fixed-text statement
    (:func:`_arrays_statement`); the new messages' ids by key."""
    from jingxin.data.store.audit import DECISION_COLUMNS, decision_values
    from jingxin.data.store.bulk import array_values
    from jingxin.data.store.ledger import COLUMNS as LEDGER
    from jingxin.data.store.ledger import row_values as contact_values
    from jingxin.dispatch.outbox_rows import COLUMNS as MESSAGES
    from jingxin.dispatch.outbox_rows import row_values as message_values

    admitted = [p for p in plans if p.message is not None]
    messages = [message_values(p.message, now=now, number=i + 1) for i, p in enumerate(admitted)]
    contacts = [contact_values(i, p.contact, now) for i, p in enumerate(admitted)]
    decisions = [{**decision_values(i, p.decision, now), "admitted": p.message is not None}
                 for i, p in enumerate(plans)]  # fmt: skip
    values = {**array_values(messages, MESSAGES, prefix="m_"),
              **array_values(contacts, LEDGER, prefix="l_"),
              **array_values(decisions, (*DECISION_COLUMNS, "admitted"), prefix="d_",
                             json=("detail",))}  # fmt: skip
    found = conn.execute(_arrays_statement(), values)
    return {key: message_id for message_id, key in found}


@functools.cache
def _arrays_statement() -> Any:
    """PostgreSQL: :func:`_write_statement` for a whole batch, each table's rows as one
    array per column (one statement text whatever the batch size, so it is prepared
    once): ``WITH m AS (INSERT INTO messages ... RETURNING id, idempotency_key), l AS
    (INSERT INTO contact_ledger ... JOIN m), d AS (INSERT INTO decisions ... LEFT JOIN m)
    SELECT id, idempotency_key FROM m``. A key already taken inserts no message, hence
    neither its contact nor its decision, as on the other paths."""
    from sqlalchemy import text

    from jingxin.data.store.audit import insert_decision_arrays_after
    from jingxin.data.store.ledger import insert_arrays_after
    from jingxin.dispatch.outbox_rows import insert_arrays

    # the TextClause built once too: parsing its ~50 parameters cost 0.2 ms a batch
    return text(f"WITH m AS ({insert_arrays(prefix='m_')}), "
                f"l AS ({insert_arrays_after('m', prefix='l_')}), "
                f"d AS ({insert_decision_arrays_after('m', prefix='d_')}) "
                "SELECT id, idempotency_key FROM m")  # fmt: skip


def _duplicate(message_id: int | None) -> Delivered:
    from jingxin.dispatch.deliver import Delivered

    return Delivered("duplicate", message_id, None, ("duplicate",))


def _existing(conn: Any, key: str) -> int | None:
    from jingxin.dispatch.deliver import existing_message

    return existing_message(conn, key)


def _insert_messages(conn: Any, rows: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    from jingxin.dispatch.outbox_rows import insert_rows

    return insert_rows(conn, rows=rows, now=now)


def _write_contacts(conn: Any, rows: list[dict[str, Any]]) -> None:
    from jingxin.data.store.ledger import record_contact_table

    if rows:
        record_contact_table(conn, table=rows)


def _write_decisions(conn: Any, rows: list[dict[str, Any]]) -> None:
    from jingxin.data.store.audit import write_decisions

    if rows:
        write_decisions(conn, decisions=rows)


def _zone(state: Any, config: PolicyConfig, tenant_id: str) -> str:
    from jingxin.policy.localtime import subscriber_zone

    rules = config.rules_for(tenant_id)
    default = rules.default_timezone if rules else "Asia/Shanghai"
    return subscriber_zone(state.roaming_country, state.timezone, default)


def _local_date(moment: datetime, zone: str):
    from jingxin.policy.localtime import date_of_day, day_number, local_us, to_us

    return date_of_day(day_number(local_us(zone, to_us(moment))))


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

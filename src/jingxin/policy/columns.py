"""The Arrow shape of the batch form: candidate rows, their state columns, the ledger.

A batch is one table: the candidate fields plus the :class:`~jingxin.policy.state.StateView`
fields of its subscriber (:data:`BATCH_SCHEMA`), and a second table with the contacts
already made (:data:`LEDGER_SCHEMA`). The decisions come back as :data:`DECISION_SCHEMA`,
row for row. The builders here turn Python objects into those tables; they loop in Python
and are meant for tests, the CLI and small batches - the store loader
(``data.store.policy_state``) builds the same columns in bulk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pyarrow as pa

from jingxin.domain.candidate import Candidate, Decision, Outcome, Reason
from jingxin.policy.localtime import from_us, to_us
from jingxin.policy.state import ContactState, state_view

TS = pa.timestamp("us", tz="UTC")

CANDIDATE_FIELDS = [
    pa.field("msisdn", pa.string()),
    pa.field("tenant_id", pa.string()),
    pa.field("category", pa.string()),
    pa.field("source", pa.string()),
    pa.field("source_id", pa.int64()),
    pa.field("priority", pa.int64()),
    pa.field("score", pa.float64()),
    pa.field("wanted_at", TS),
    pa.field("idempotency_key", pa.string()),
]
VIEW_COLUMNS = [
    pa.field("in_service", pa.bool_()),
    pa.field("invalid", pa.bool_()),
    pa.field("blacklisted", pa.bool_()),
    pa.field("key_used", pa.bool_()),
    pa.field("opted_out", pa.bool_()),
    pa.field("has_consent", pa.bool_()),
    pa.field("complaint_sensitive", pa.bool_()),
    pa.field("last_complaint_at", TS),
    pa.field("timezone", pa.string()),
    pa.field("roaming_country", pa.string()),
]
BATCH_SCHEMA = pa.schema(CANDIDATE_FIELDS + VIEW_COLUMNS)
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("msisdn", pa.string()),
        pa.field("category", pa.string()),
        pa.field("campaign_id", pa.int64()),
        pa.field("local_date", pa.date32()),
    ]
)
DECISION_SCHEMA = pa.schema(
    [
        pa.field("msisdn", pa.string()),
        pa.field("tenant_id", pa.string()),
        pa.field("idempotency_key", pa.string()),
        pa.field("source", pa.string()),
        pa.field("category", pa.string()),
        pa.field("outcome", pa.string()),
        pa.field("send_at", TS),
        pa.field("reasons", pa.string()),
        pa.field("winner", pa.string()),
    ]
)


def batch_table(
    candidates: Sequence[Candidate], states: Mapping[str, ContactState], now: datetime
) -> pa.Table:
    """Candidates joined with their subscribers' state as of ``now`` (Python loop)."""
    now_us = to_us(now)
    rows: dict[str, list] = {f.name: [] for f in BATCH_SCHEMA}
    for c in candidates:
        state = states.get(c.msisdn) or ContactState(msisdn=c.msisdn)
        view = state_view(c, state, now_us)
        for name in (f.name for f in CANDIDATE_FIELDS):
            rows[name].append(getattr(c, name))
        for name in (f.name for f in VIEW_COLUMNS):
            if name == "last_complaint_at":
                us = view.last_complaint_us
                rows[name].append(None if us is None else from_us(us))
            else:
                rows[name].append(getattr(view, name))
    return pa.table(rows, schema=BATCH_SCHEMA)


def ledger_table(states: Mapping[str, ContactState] | Sequence[ContactState]) -> pa.Table:
    """Every contact of every state, as ledger rows."""
    values = states.values() if isinstance(states, Mapping) else states
    rows: dict[str, list] = {f.name: [] for f in LEDGER_SCHEMA}
    for state in values:
        for mark in state.contacts:
            rows["msisdn"].append(state.msisdn)
            rows["category"].append(mark.category)
            rows["campaign_id"].append(mark.campaign_id)
            rows["local_date"].append(mark.local_date)
    return pa.table(rows, schema=LEDGER_SCHEMA)


def empty_ledger() -> pa.Table:
    return LEDGER_SCHEMA.empty_table()


def decisions_of(table: pa.Table) -> list[Decision]:
    """The decision table back as :class:`Decision` objects (tests, the CLI)."""
    out = []
    for row in table.select(["outcome", "send_at", "reasons", "winner"]).to_pylist():
        send_at = row["send_at"]
        if send_at is not None and send_at.tzinfo is None:
            send_at = send_at.replace(tzinfo=UTC)
        reasons = tuple(Reason(r) for r in row["reasons"].split(",") if r)
        out.append(Decision(Outcome(row["outcome"]), send_at, reasons, row["winner"]))
    return out

"""The campaign's columnar bulk paths against the row-at-a-time ones, on SQLite and PostgreSQL.

``enqueue_table`` must write what ``enqueue`` writes, ``record_contact_table`` what
``record_contacts`` writes, and the temporary-table load of a large batch's contact state
what the IN-list load of small batches reads; a campaign over a realistic contact state
must come out the same on both stores.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.data.store import open_store
from jingxin.data.store.ledger import record_contact_table, record_contacts
from jingxin.data.store.models import LedgerEntry, Message
from jingxin.dispatch.outbox import OutboxEntry, enqueue, enqueue_table
from jingxin.errors import InputError

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def _entries(prefix: str) -> list[OutboxEntry]:
    later = NOW + timedelta(hours=3)
    return [
        OutboxEntry(tenant_id="t", msisdn="+8613900000001", category="marketing",
                    text='引号"，逗号,换行\n', idempotency_key=f"{prefix}1", parts=2,
                    scheduled_at=later, expires_at=later + timedelta(hours=1),
                    campaign_id=7, cost=0.1),
        OutboxEntry(tenant_id="t", msisdn="+8613900000002", category="otp", text="",
                    idempotency_key=f"{prefix}2"),
    ]  # fmt: skip


def _as_table(entries: list[OutboxEntry]) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "tenant_id": [e.tenant_id for e in entries], "msisdn": [e.msisdn for e in entries],
        "category": [e.category for e in entries], "text": [e.text for e in entries],
        "idempotency_key": [e.idempotency_key for e in entries],
        "parts": [e.parts for e in entries],
        "scheduled_at": pa.array([e.scheduled_at for e in entries], ts),
        "expires_at": pa.array([e.expires_at for e in entries], ts),
        "campaign_id": pa.array([e.campaign_id for e in entries], pa.int64()),
        "cost": pa.array([e.cost for e in entries], pa.float64()),
    })  # fmt: skip


def _messages(store, prefix: str) -> list[tuple]:
    columns = [c for c in Message.__table__.columns if c.key not in ("id", "idempotency_key")]
    with store.sessions() as session:
        rows = session.execute(select(*columns).where(Message.idempotency_key.startswith(prefix))
                               .order_by(Message.idempotency_key)).all()  # fmt: skip
    return [tuple(r) for r in rows]


def test_enqueue_table_writes_what_enqueue_writes(store) -> None:
    # Given the same entries (quotes, a newline, an empty text, defaults left out)
    # When one copy goes through enqueue and the other through enqueue_table
    rows = enqueue(store, entries=_entries("a"), now=NOW)
    table = enqueue_table(store, table=_as_table(_entries("b")), now=NOW)
    # Then both wrote the same messages, and a second pass is all duplicates
    assert (rows.inserted, table.inserted) == (2, 2)
    assert _messages(store, "a") == _messages(store, "b")
    again = enqueue_table(store, table=_as_table(_entries("b")), now=NOW)
    assert (again.inserted, again.duplicates) == (0, 2)


def test_enqueue_table_names_a_bad_row(store) -> None:
    table = _as_table(_entries("c"))
    spam = table.set_column(2, "category", pa.array(["marketing", "spam"]))
    with pytest.raises(InputError, match=r"entry #2 \(c2\): unknown category 'spam'"):
        enqueue_table(store, table=spam, now=NOW)
    blank = table.set_column(1, "msisdn", pa.array(["+8613900000001", ""]))
    with pytest.raises(InputError, match=r"entry #2: msisdn and idempotency_key are required"):
        enqueue_table(store, table=blank, now=NOW)
    assert _messages(store, "c") == []


def test_record_contact_table_writes_what_record_contacts_writes(store) -> None:
    def entries(prefix: str) -> list[dict]:
        return [{"tenant_id": "t", "msisdn": f"+861390000000{i}", "category": "marketing",
                 "campaign_id": i or None, "contact_at": NOW + timedelta(minutes=i),
                 "local_date": date(2026, 11, 23), "idempotency_key": f"{prefix}{i}"}
                for i in range(3)]  # fmt: skip

    with store.transaction() as session:
        assert record_contacts(session, entries=entries("a")) == 3
        table = pa.Table.from_pylist(entries("b"))
        assert record_contact_table(session, table=table) == 3
        assert record_contact_table(session, table=table) == 0  # keys already recorded
    columns = [c for c in LedgerEntry.__table__.columns if c.key not in ("id", "idempotency_key")]
    with store.sessions() as session:
        a, b = (session.execute(select(*columns).where(LedgerEntry.idempotency_key.startswith(p))
                                .order_by(LedgerEntry.idempotency_key)).all()
                for p in ("a", "b"))  # fmt: skip
    assert a == b


def test_a_large_batch_reads_the_same_state_as_small_ones(store) -> None:
    from jingxin.data.store.contact import add_to_blacklist, record_opt_out
    from jingxin.policy.columns import CANDIDATE_FIELDS
    from jingxin.data.store.policy_state import CHUNK, load_batch

    # Given state for every 7th and every 11th of 1,200 numbers (more than one IN list)
    numbers = [f"+86139{i:08d}" for i in range(1200)]
    with store.transaction() as session:
        for i in range(0, 1200, 7):
            record_opt_out(session, msisdn=numbers[i], source="api", at=NOW - timedelta(days=1))
        for i in range(0, 1200, 11):
            add_to_blacklist(session, msisdn=numbers[i], added_by="t", at=NOW - timedelta(days=1))
    n = len(numbers)
    candidates = pa.table({
        "msisdn": numbers, "tenant_id": ["t"] * n, "category": ["marketing"] * n,
        "source": ["campaign"] * n, "source_id": [1] * n, "priority": [0] * n,
        "score": [0.0] * n, "wanted_at": [None] * n,
        "idempotency_key": [f"k{i}" for i in range(n)],
    }, schema=pa.schema(CANDIDATE_FIELDS))  # fmt: skip
    # When they are loaded as one batch (temporary table) and in IN-list sized slices
    with store.sessions() as session:
        whole, _ = load_batch(session, candidates=candidates, now=NOW)
        parts = [load_batch(session, candidates=candidates.slice(s, CHUNK), now=NOW)[0]
                 for s in range(0, n, CHUNK)]  # fmt: skip
    # Then the state columns agree row for row
    assert whole.equals(pa.concat_tables(parts))
    assert whole.column("opted_out").to_pylist().count(True) == len(range(0, 1200, 7))


def test_a_campaign_comes_out_the_same_on_every_store(store, tmp_path) -> None:
    from jingxin.bench import campaign as bench
    from jingxin.dispatch.campaign import CampaignSpec, run_campaign

    # Given the benchmark's audience of 4,000, its approved template and contact state
    audience = tmp_path / "audience.parquet"
    bench._audience(audience, 4000)
    bench._template(store)
    bench._state(store, 4000)
    spec = CampaignSpec(name="t", category="marketing", tariff=0.05,
                        template={"code": "bench.points"}, audience={"path": audience},
                        experiment={"holdout": "none"})  # not about experiments  # fmt: skip
    # When the campaign runs in chunks of 1,500
    import jingxin.dispatch.delivery_table as runner

    runner_chunk, runner.CHUNK = runner.CHUNK, 1500
    try:
        summary = run_campaign(store, spec=spec, now=bench.NOON)
    finally:
        runner.CHUNK = runner_chunk
    # Then every kind of state rejects its share (the same counts on SQLite and PostgreSQL)
    assert dict(summary.rejected) == {
        "duplicate": 4, "invalid_number": 2 + 20, "opted_out": 40, "blacklisted": 20,
        "cap_day": 119,
    }  # fmt: skip
    assert summary.accepted == 4000 - sum(summary.rejected.values())
    with store.sessions() as session:
        queued = session.scalars(select(Message.msisdn)).all()
        mine = LedgerEntry.campaign_id == summary.campaign_id
        ledger = session.scalars(select(LedgerEntry.idempotency_key).where(mine)).all()
    assert len(queued) == len(set(queued)) == len(ledger) == summary.accepted


def test_enqueue_table_refuses_naive_instants(store) -> None:
    table = _as_table(_entries("d"))
    naive = table.set_column(6, "scheduled_at", pa.array([NOW.replace(tzinfo=None)] * 2))
    with pytest.raises(InputError, match=r"scheduled_at: expected a timestamp column with a time"):
        enqueue_table(store, table=naive, now=NOW)

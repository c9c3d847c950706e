"""The worker's batch reads and updates by key probe their indexes whatever the planner's
statistics say: after an ANALYZE of a quiet store (no message awaiting its receipt), a
campaign's burst must not turn each receipt batch into a read of every message in the
state (receipts._PARTS_PG, receipts._FINISH_PG), and tables analysed young must not be
read whole (the claim's re-check, the handlers' pending read, the receipts' parts)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from jingxin.data.store import open_store
from jingxin.data.store.models import utc_now
from jingxin.dispatch.outbox import OutboxEntry, enqueue, json_rows
from jingxin.dispatch.receipts import _FINISH_PG, _PARTS_PG


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _enqueue(store, n: int) -> None:
    """``n`` notifications queued for ``n`` numbers (+8613900000000 on)."""
    enqueue(store, entries=[OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}",
                                        category="notification", text="x",
                                        idempotency_key=f"k{i}") for i in range(n)])  # fmt: skip


def _analyse(store) -> None:
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _generic_plan(conn, statement, params: dict) -> list[dict]:
    """The plan PostgreSQL keeps for a prepared statement (its generic plan), as nodes."""
    conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    compiled = statement.compile(dialect=conn.dialect)
    bound = {**compiled.params, **compiled.construct_params(params)}
    explained = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), bound).scalar_one()
    explained = json.loads(explained) if isinstance(explained, str) else explained
    return _nodes(explained[0]["Plan"])


@pytest.mark.postgres
def test_batch_updates_probe_the_primary_key_after_a_quiet_analyse(pg_url) -> None:
    store = open_store(pg_url, upgrade=True)
    try:
        # Given a store in service: 4,000 delivered messages with their parts, analysed
        # while nothing awaited a receipt
        _enqueue(store, 4000)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE messages SET state = 'delivered', submitted_at = now(), "
                              "finished_at = now()"))
            conn.execute(text("INSERT INTO message_parts (message_id, part_no, channel, smsc_id, "
                              "state, submitted_at) SELECT id, 1, 'sim', 'S' || id, 'delivered', "
                              "now() FROM messages"))
        _analyse(store)
        # ... and then a burst: 2,000 messages submitted, awaiting their receipts
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE messages SET state = 'submitted' WHERE id % 2 = 0"))
            conn.execute(text("UPDATE message_parts SET state = 'submitted' WHERE message_id % 2 = 0"))
        now = utc_now() + timedelta(seconds=1)
        rows = json_rows([{"mid": 2, "st": "delivered", "err": None, "pid": 2, "at": now}])
        cases = {
            "messages": (_FINISH_PG, {"now": now, "rows": rows}),
            "message_parts": (_PARTS_PG, {"rows": rows}),
        }
        for table, (statement, params) in cases.items():
            # When a receipt batch's update is planned as a prepared statement keeps it
            with store.engine.begin() as conn:
                nodes = _generic_plan(conn, statement, params)
                conn.rollback()
            # Then it reads the table through its primary key: no scan of the table, no
            # read of every row in the state through the claim's index
            reads = [n for n in nodes if n.get("Relation Name") == table and n["Node Type"] != "ModifyTable"]
            assert [(n["Node Type"], n.get("Index Name")) for n in reads] == [
                ("Index Scan", f"pk_{table}")], (table, reads)
    finally:
        store.dispose()


@pytest.mark.postgres
def test_batch_updates_change_only_rows_still_in_their_state(pg_url) -> None:
    store = open_store(pg_url, upgrade=True)
    try:
        # Given two messages awaiting receipts and one already resolved
        _enqueue(store, 3)
        with store.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(text("SELECT id FROM messages ORDER BY id"))]
            conn.execute(text("UPDATE messages SET state = 'submitted'"))
            conn.execute(text("UPDATE messages SET state = 'expired' WHERE id = :id"), {"id": ids[2]})
        now = utc_now()
        # When a receipt batch finishes all three
        with store.engine.begin() as conn:
            conn.execute(_FINISH_PG, {"now": now, "rows": json_rows(
                [{"mid": i, "st": "delivered", "err": None} for i in ids])})  # fmt: skip
            states = dict(conn.execute(text("SELECT id, state FROM messages")).all())
        # Then the two awaiting ones are delivered and the resolved one keeps its state
        assert states == {ids[0]: "delivered", ids[1]: "delivered", ids[2]: "expired"}
    finally:
        store.dispose()


@pytest.mark.postgres
def test_the_claims_recheck_probes_each_claimed_row(pg_url) -> None:
    from jingxin.dispatch.recheck import _facts_query

    store = open_store(pg_url, upgrade=True)
    try:
        # Given 4,000 messages and 2,000 opt-outs of their numbers, analysed while there
        # were 40 opt-outs
        _enqueue(store, 4000)
        insert = text("INSERT INTO opt_outs (msisdn, tenant_id, category, source, recorded_at) "
                      "SELECT '+86139' || lpad(i::text, 8, '0'), 'default', NULL, 'sms_reply', now() "
                      "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) AS i")
        with store.engine.begin() as conn:
            conn.execute(insert, {"a": 0, "b": 39})
        _analyse(store)
        with store.engine.begin() as conn:
            conn.execute(insert, {"a": 40, "b": 1999})
        # When the claim's recheck of 100 claimed messages is planned as it is kept
        with store.engine.begin() as conn:
            nodes = _generic_plan(conn, _facts_query("postgresql"),
                                  {"ids": list(range(1, 101)), "now": utc_now()})
            conn.rollback()
        # Then messages and opt_outs are read by index probes only, never whole
        reads = [(n["Node Type"], n.get("Relation Name")) for n in nodes
                 if n.get("Relation Name") in ("messages", "opt_outs")]  # fmt: skip
        assert reads and all(kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
                             for kind, _ in reads), reads  # fmt: skip
        assert not [n for n in nodes if n["Node Type"] in ("Merge Join", "Hash Join")
                    and any(c.get("Relation Name") in ("messages", "opt_outs")
                            for c in _nodes(n))]  # fmt: skip
    finally:
        store.dispose()


@pytest.mark.postgres
def test_the_handlers_pending_read_probes_each_mo(pg_url) -> None:
    from sqlalchemy import Integer, bindparam

    from jingxin.dispatch.handler_runs import _pending_probed

    store = open_store(pg_url, upgrade=True)
    try:
        # Given an inbox analysed at 40 MO that then grew to 3,000, half of them handled
        insert = text(
            "INSERT INTO mo_messages (channel, msisdn, service_number, text, coding, parts, "
            "parts_expected, complete, undecodable, received_at, stored_at, dedup_key) "
            "SELECT 'sim', '+86139' || lpad(i::text, 8, '0'), '10690001', 'TD', 0, 1, 1, true, "
            "false, now(), now(), 'k' || i FROM generate_series(CAST(:a AS int), CAST(:b AS int)) AS i")
        with store.engine.begin() as conn:
            conn.execute(insert, {"a": 1, "b": 40})
        _analyse(store)
        with store.engine.begin() as conn:
            conn.execute(insert, {"a": 41, "b": 3000})
            conn.execute(text("INSERT INTO mo_outcomes (mo_id, outcome, handled_at) "
                              "SELECT id, 'handled', now() FROM mo_messages WHERE id % 2 = 0"))
            ids = [row[0] for row in conn.execute(text("SELECT id FROM mo_messages ORDER BY id DESC LIMIT 40"))]
        # When the pending read of a batch's 40 MO is planned as it is kept
        query, _ = _pending_probed(limit=bindparam("limit", type_=Integer()),
                                   window=timedelta(hours=72), default_senders={})  # fmt: skip
        with store.engine.begin() as conn:
            nodes = _generic_plan(conn, query, {"ids": ids, "limit": 200})
            conn.rollback()
        with store.engine.connect() as conn:
            got = conn.execute(query, {"ids": ids, "limit": 200}).all()
        # Then the inbox and the outcomes are read by index probes only
        reads = [(n["Node Type"], n.get("Relation Name")) for n in nodes
                 if n.get("Relation Name") in ("mo_messages", "mo_outcomes")]  # fmt: skip
        assert reads and all(kind in ("Index Scan", "Index Only Scan") for kind, _ in reads), reads
        # ... and it answers what the join did: the 20 of them without an outcome, in order
        assert [row.id for row in got] == sorted(i for i in ids if i % 2)
    finally:
        store.dispose()


@pytest.mark.postgres
def test_the_receipts_lookup_of_parts_probes_the_smsc_id_index(pg_url) -> None:
    from jingxin.dispatch.receipts import _parts_by_smsc_id_pg

    store = open_store(pg_url, upgrade=True)
    try:
        # Given 40 parts when analysed, then 3,000
        _enqueue(store, 3000)
        parts = text("INSERT INTO message_parts (message_id, part_no, channel, smsc_id, state, "
                     "submitted_at) SELECT id, 1, 'sim', 'S' || id, 'submitted', now() "
                     "FROM messages ORDER BY id OFFSET :skip LIMIT :take")  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(parts, {"skip": 0, "take": 40})
        _analyse(store)
        with store.engine.begin() as conn:
            conn.execute(parts, {"skip": 40, "take": 2960})
            ids = [row[0] for row in conn.execute(text("SELECT id FROM messages ORDER BY id"))]
        wanted = [f"S{i}" for i in ids[2000:2100]] + ["unknown"]
        # When a receipt batch's lookup is planned as it is kept, and run
        with store.engine.begin() as conn:
            nodes = _generic_plan(conn, _parts_by_smsc_id_pg(), {"ids": wanted})
            conn.rollback()
        with store.engine.connect() as conn:
            found = conn.execute(_parts_by_smsc_id_pg(), {"ids": wanted}).all()
        # Then message_parts is read by the SMSC id index only, and each id finds its part
        reads = [(n["Node Type"], n.get("Index Name")) for n in nodes
                 if n.get("Relation Name") == "message_parts"]  # fmt: skip
        assert reads == [("Index Scan", "ix_message_parts_smsc_id")], reads
        assert sorted(row.smsc_id for row in found) == sorted(wanted[:-1])
        assert {row.channel for row in found} == {"sim"} and found[0].submitted_at.tzinfo is not None
    finally:
        store.dispose()

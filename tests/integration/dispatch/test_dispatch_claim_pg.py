"""The one-statement claim on PostgreSQL: lane order, reserved room, held campaigns, disjoint
claims by concurrent workers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from jingxin.data.store import open_store
from jingxin.data.store.models import utc_now
from jingxin.dispatch.claim import claim
from jingxin.dispatch.outbox import OutboxEntry, enqueue


def _entries(n: int, category: str, prefix: str) -> list[OutboxEntry]:
    return [OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category=category, text="x",
                        idempotency_key=f"{prefix}{i}") for i in range(n)]  # fmt: skip


@pytest.mark.postgres
def test_claim_lanes_and_reserve_on_postgresql(pg_url) -> None:
    store = open_store(pg_url, upgrade=True)
    try:
        # Given marketing queued first, then notifications, then OTPs
        enqueue(store, entries=_entries(30, "marketing", "m"))
        enqueue(store, entries=_entries(4, "notification", "n"))
        enqueue(store, entries=_entries(3, "otp", "o"))
        now = utc_now() + timedelta(seconds=1)
        # When 10 are claimed with 2 reserved for the first lane
        got = claim(store, worker="w", limit=10, now=now, reserve=2)
        # Then OTPs first, lower lanes only in the room left, each lane oldest first
        assert [c.lane for c in got] == [0, 0, 0, 1, 1, 1, 1, 2]
        assert [c.id for c in got if c.lane == 1] == sorted(
            c.id for c in got if c.lane == 1
        )
        assert got[0].expires_at is not None and got[0].expires_at.tzinfo is not None
        assert all(c.attempts == 1 for c in got)
    finally:
        store.dispose()


@pytest.mark.postgres
def test_concurrent_claims_never_share_a_message(pg_url) -> None:
    store = open_store(pg_url, upgrade=True)
    try:
        # Given 2,000 queued messages
        enqueue(store, entries=_entries(2000, "marketing", "m"))
        now = utc_now() + timedelta(seconds=1)

        def drain(name: str) -> list[int]:
            ids: list[int] = []
            while batch := claim(store, worker=name, limit=50, now=now):
                ids += [c.id for c in batch]
            return ids

        # When four claimers drain them at once
        with ThreadPoolExecutor(4) as pool:
            claimed = list(pool.map(drain, ["a", "b", "c", "d"]))
        # Then every message was claimed exactly once
        everything = [i for ids in claimed for i in ids]
        assert len(everything) == len(set(everything)) == 2000
    finally:
        store.dispose()


@pytest.mark.postgres
def test_the_way_backs_replies_have_their_lane_and_are_not_held_with_a_campaign(pg_url) -> None:
    from dataclasses import replace

    store = open_store(pg_url, upgrade=True)
    try:
        # Given a campaign of 300 notifications queued first, then 30 hall and inbox replies
        # (notifications by category), one notification from the send API, and 5 OTPs last
        enqueue(store, entries=_entries(300, "notification", "c"))
        replies = [replace(e, source="hall" if i % 2 else "inbox", source_id=str(i))
                   for i, e in enumerate(_entries(30, "notification", "r"))]  # fmt: skip
        enqueue(store, entries=replies + [replace(_entries(1, "notification", "a")[0], source="api")])
        enqueue(store, entries=_entries(5, "otp", "o"))
        now = utc_now() + timedelta(seconds=1)
        # When a worker whose MO wait claims as it does then: 200 slots, the other lanes
        # within a quarter of them (Worker._claim_reserve: 150 reserved)
        got = claim(store, worker="w", limit=200, now=now, reserve=150)
        # Then the OTPs first, then every reply (their own lane), and the campaign only in
        # what is left of the quarter (50 - 35), oldest first
        assert [c.lane for c in got] == [0] * 5 + [3] * 30 + [1] * 15
        assert {c.idempotency_key[0] for c in got if c.lane == 1} == {"c"}
        assert {c.category for c in got if c.lane == 3} == {"notification"}
    finally:
        store.dispose()


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@pytest.mark.postgres
def test_the_claim_finds_its_rows_by_key_not_by_hashing_the_table(pg_url) -> None:
    import json

    from sqlalchemy import text

    from jingxin.dispatch.claim import HELD_CAMPAIGN_STATUSES, _pg_claim_statement
    from jingxin.data.store.models.messages import CLAIM_ORDER

    store = open_store(pg_url, upgrade=True)
    try:
        # Given a campaign's 5,000 queued messages, the table analysed
        enqueue(store, entries=_entries(5000, "notification", "m"))
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE messages"))
        # When the claim of 10 is planned (and run: the plan is what it did)
        statement = _pg_claim_statement(CLAIM_ORDER)
        with store.engine.begin() as conn:
            explained = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + str(statement)), {
                "now": utc_now() + timedelta(seconds=1), "worker": "w", "limit": 10,
                "reserve": 0, "held": list(HELD_CAMPAIGN_STATUSES),
            }).scalar_one()  # fmt: skip
            conn.rollback()
        explained = json.loads(explained) if isinstance(explained, str) else explained
        nodes = _plan_nodes(explained[0]["Plan"])
        # Then the update reads the claimed rows through the primary key: the planner
        # cannot know how many rows LIMIT GREATEST(...) lets through, and a join to the
        # lanes' union hashed the whole table on every claim
        target = [n for n in nodes if n.get("Relation Name") == "messages" and n.get("Alias") == "m"
                  and n["Node Type"] != "ModifyTable"]  # fmt: skip
        assert [n["Node Type"] for n in target] == ["Index Scan"], target
        assert target[0]["Index Name"] == "pk_messages"
        assert not [n for n in nodes if n["Node Type"] == "Hash Join"]
        assert nodes[0]["Actual Rows"] == 10  # and the claim was the claim: ten rows
    finally:
        store.dispose()

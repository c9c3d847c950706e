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

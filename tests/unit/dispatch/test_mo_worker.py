"""The worker's side of the MO inbox: parts acknowledged only after commit, handlers run
right after it (a failing run counted, the worker going on), the flusher woken by MO."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from dispatch_fakes import HappyChannel, make_worker
from mo_parts import smpp_parts
from sqlalchemy import func, select

from jingxin.data.store.models import MoMessage
from jingxin.errors import StoreError


def mo_count(store) -> int:
    with store.sessions() as session:
        return session.execute(select(func.count()).select_from(MoMessage)).scalar_one()


async def test_the_ack_waits_for_the_commit_and_survives_a_failed_write(store, monkeypatch) -> None:
    seen: list[int] = []
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    worker.on_mo_stored = lambda: seen.append(mo_count(store))
    on_part = worker.mo_inbox.handler("happy")
    # Given an MO part handed to the inbox
    ack = on_part(smpp_parts("TD")[0])
    assert not ack.done()
    # When the first write fails (the database went away)
    real = worker.write_back

    def failing(**kwargs):
        raise StoreError("database unavailable")

    monkeypatch.setattr(worker, "write_back", failing)
    with pytest.raises(StoreError):
        worker.flush()
    await asyncio.sleep(0)
    # Then it is neither acknowledged nor lost, and no handler ran
    assert not ack.done() and len(worker.mo_inbox.items) == 1 and seen == []
    # And once a later write commits it: acknowledged, and the handlers ran after the commit
    monkeypatch.setattr(worker, "write_back", real)
    worker.flush()
    await asyncio.sleep(0)
    assert ack.done() and seen == [1]
    assert (worker.tally.mo_parts, worker.tally.mo_messages) == (1, 1)


async def test_a_handler_run_that_raises_is_counted_and_the_worker_goes_on(store) -> None:
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})

    def broken() -> None:
        raise RuntimeError("handler bug")

    worker.on_mo_stored = broken
    on_part = worker.mo_inbox.handler("happy")
    # Given two MO, the handlers failing after the first
    first = on_part(smpp_parts("one")[0])
    worker.flush()
    second = on_part(smpp_parts("two", source="8613800000002")[0])
    worker.flush()
    await asyncio.sleep(0)
    # Then both are stored and acknowledged, the failures counted
    assert first.done() and second.done() and mo_count(store) == 2
    assert worker.tally.mo_handler_errors == 2


async def test_an_mo_wakes_the_flusher_before_the_flush_interval(store) -> None:
    # Given a worker whose flush interval is a whole second
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})}, flush_interval=1.0)
    handled: list[datetime] = []
    worker.on_mo_stored = lambda: handled.append(datetime.now(UTC))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop=stop))
    await asyncio.sleep(0.3)  # past the first (sweeping) flush
    # When an MO arrives
    sent = datetime.now(UTC)
    part = smpp_parts("hello", at=sent)[0]
    await asyncio.wait_for(worker.mo_inbox.handler("happy")(part), 2.0)
    while not handled or handled[-1] < sent:
        await asyncio.sleep(0.01)
    stop.set()
    await running
    # Then it is stored and handled well within the interval, and its latency is recorded
    assert (handled[-1] - sent).total_seconds() < 0.5
    assert len(worker.mo_latencies) == 1 and worker.mo_latencies[0] < 0.5


def test_new_claims_yield_to_the_way_back_while_mo_wait(store) -> None:
    # Given a worker with 200 slots, nothing in flight (reserve: 20 for the first lane)
    worker, _ = make_worker(store, {"a": (HappyChannel, {})}, max_in_flight=200)
    assert (worker._free(), worker._claim_reserve(200)) == (200, 20)
    # When MO parts wait to be stored, Then the lanes after the first (notifications,
    # marketing) may fill only a quarter of the slots, the first (OTPs and the way back's
    # replies) all of them
    worker.mo_inbox.items.append(("a", object()))
    assert (worker._free(), worker._claim_reserve(200)) == (200, 150)
    # And the same while stored MO wait for their handlers; with 30 slots in use the
    # other lanes get 20 more
    worker.mo_inbox.items.clear()
    worker._handlers_due = True
    assert worker._claim_reserve(200) == 150 and worker._claim_reserve(170) == 150
    # And past the quarter, the first lane's own reserve still stands
    assert worker._claim_reserve(100) == 100 and worker._claim_reserve(10) == 20
    # And all of them once the way back has caught up
    worker._handlers_due = False
    assert (worker._free(), worker._claim_reserve(200)) == (200, 20)
    assert worker._claim_limit(200) == 200  # its first lane (OTPs) is urgent: it claims in full


def test_a_worker_without_an_urgent_lane_keeps_its_whole_claim_within_the_share(store) -> None:
    # Given a worker for notifications and marketing only (its first lane may take the
    # reserved slots, so the reserve cannot hold it back)
    worker, _ = make_worker(store, {"a": (HappyChannel, {})}, max_in_flight=200, lanes=(1, 2))
    assert worker._claim_limit(200) == 200
    # When MO wait, Then it claims at most a quarter of its slots, less what is in use
    worker._handlers_due = True
    assert [worker._claim_limit(free) for free in (200, 170, 100)] == [50, 20, 0]


async def test_the_metrics_count_mo_stored_and_redeliveries_taken_as_such(store) -> None:
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    on_part = worker.mo_inbox.handler("happy")
    # Given an MO, then the same PDU again (an SMSC delivering it after a lost ack)
    part = smpp_parts("TD")[0]
    on_part(part)
    worker.flush()
    on_part(part)
    worker.flush()
    await asyncio.sleep(0)
    # Then the metrics say one stored, one taken for a redelivery, one whole MO
    text = worker.metrics.render().decode()
    assert "jingxin_mo_parts_total 1.0" in text
    assert "jingxin_mo_redelivered_total 1.0" in text
    assert 'jingxin_mo_messages_total{state="complete"} 1.0' in text
    assert (worker.tally.mo_parts, worker.tally.mo_duplicates) == (1, 1)

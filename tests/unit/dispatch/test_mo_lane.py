"""The worker's MO lane: MO are stored, acknowledged and handled on their own, not in the
flusher's write-back of campaign outcomes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from dispatch_fakes import HappyChannel, make_worker
from mo_parts import smpp_parts

from jingxin.errors import StoreError


async def test_an_mo_is_stored_and_handled_while_the_write_back_fails(store, monkeypatch) -> None:
    # Given a worker whose write-back of outcomes and receipts keeps failing
    worker, _ = make_worker(store, {"happy": (HappyChannel, {})})
    handled: list[datetime] = []
    worker.on_mo_stored = lambda: handled.append(datetime.now(UTC))

    def failing(**kwargs):
        raise StoreError("outbox unavailable")

    monkeypatch.setattr(worker, "write_back", failing)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop=stop))
    await asyncio.sleep(0.2)
    # When an MO arrives
    sent = datetime.now(UTC)
    ack = worker.mo_inbox.handler("happy")(smpp_parts("TD", at=sent)[0])
    await asyncio.wait_for(ack, 2.0)
    while not handled or handled[-1] < sent:
        await asyncio.sleep(0.01)
    stop.set()
    await running
    # Then it was committed (acknowledged), counted and handled by the MO lane regardless
    assert worker.tally.mo_parts == 1 and worker.tally.mo_messages == 1
    assert len(worker.mo_latencies) == 1

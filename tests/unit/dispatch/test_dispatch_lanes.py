"""Priority lanes: an OTP queued while a marketing backlog drains leaves within a second."""

from __future__ import annotations

import asyncio
import time

from dispatch_fakes import HappyChannel, entries, make_worker, states
from sqlalchemy import select

from jingxin.data.store.models import Message, utc_now
from jingxin.dispatch.claim import claim
from jingxin.dispatch.outbox import enqueue


class SlowChannel(HappyChannel):
    """Each submit takes 20 ms: a backlog of 3,000 takes far longer than the test waits."""

    async def submit(self, message):
        await asyncio.sleep(0.02)
        return await super().submit(message)


async def test_an_otp_overtakes_a_marketing_backlog(store) -> None:
    # Given 3,000 marketing messages draining through a slow channel
    enqueue(store, entries=entries(3000, prefix="m"))
    worker, channels = make_worker(
        store, {"slow": (SlowChannel, {"receipts": False})}, max_in_flight=20
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop=stop))
    await asyncio.sleep(0.3)
    # When an OTP is accepted mid-drain
    accepted = time.monotonic()
    enqueue(store, entries=entries(1, category="otp", prefix="otp"))
    # Then it is submitted within a second, while most marketing is still queued
    while True:
        sent = [
            m
            for m in channels["slow"].sent
            if m.destination == "8613800000000" and m.priority == 1
        ]
        if sent or time.monotonic() - accepted > 2:
            break
        await asyncio.sleep(0.005)
    waited = time.monotonic() - accepted
    stop.set()
    await running
    assert sent, "the OTP was not submitted"
    assert waited < 1.0
    assert states(store).get("queued", 0) > 2000


def test_claim_takes_lanes_in_priority_order(store) -> None:
    # Given marketing queued first, then notifications, then OTPs
    enqueue(store, entries=entries(5, prefix="m"))
    enqueue(store, entries=entries(5, category="notification", prefix="n"))
    enqueue(store, entries=entries(5, category="otp", prefix="o"))
    # When 8 are claimed
    got = claim(store, worker="w", limit=8, now=utc_now())
    # Then all 5 OTPs come first, then 3 notifications, and no marketing
    assert [c.category for c in got] == ["otp"] * 5 + ["notification"] * 3


def test_claim_skips_future_and_held_campaign_messages(store) -> None:
    from datetime import timedelta

    from jingxin.data.store.models import Campaign

    with store.transaction() as s:
        s.add(
            Campaign(
                id=7,
                tenant_id="default",
                name="c",
                category="marketing",
                status="paused",
            )
        )
    enqueue(store, entries=entries(3, prefix="held", campaign_id=7))
    enqueue(
        store,
        entries=entries(2, prefix="later", scheduled_at=utc_now() + timedelta(hours=1)),
    )
    enqueue(store, entries=entries(1, prefix="now"))
    got = claim(store, worker="w", limit=10, now=utc_now())
    assert [c.idempotency_key for c in got] == ["now0"]
    with store.sessions() as s:
        assert (
            s.scalar(select(Message.worker).where(Message.idempotency_key == "now0"))
            == "w"
        )


def test_reserved_room_is_for_the_first_lane_only(store) -> None:
    # Given a marketing backlog, a few notifications and two OTPs
    enqueue(store, entries=entries(30, prefix="m"))
    enqueue(store, entries=entries(4, category="notification", prefix="n"))
    enqueue(store, entries=entries(2, category="otp", prefix="o"))
    # When 10 are claimed with 3 of them reserved for OTP
    got = claim(store, worker="w", limit=10, now=utc_now(), reserve=3)
    # Then both OTPs, then lower lanes only up to 10 - 3 in all
    assert [c.lane for c in got] == [0, 0, 1, 1, 1, 1, 2]
    # And a worker claiming one lane has no one to reserve for
    assert (
        len(claim(store, worker="w", limit=5, now=utc_now(), lanes=(2,), reserve=3))
        == 5
    )


async def test_lower_lanes_wait_for_the_window_in_the_worker_not_in_the_channel(
    store,
) -> None:
    # Given a worker whose channel has a window of 4 and a marketing backlog
    enqueue(store, entries=entries(200, prefix="m"))
    worker, channels = make_worker(
        store, {"slow": (SlowChannel, {"receipts": False})}, max_in_flight=50,
        windows={"slow": 4},
    )  # fmt: skip
    inside = []
    real = channels["slow"].submit

    async def counting(message):
        inside.append(message)
        try:
            return await real(message)
        finally:
            inside.remove(message)

    channels["slow"].submit = counting
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop=stop))
    peak = 0
    for _ in range(30):
        await asyncio.sleep(0.01)
        peak = max(peak, len(inside))
    # When an OTP arrives, it goes straight into the channel beside the 4 marketing submits
    enqueue(store, entries=entries(1, category="otp", prefix="otp"))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if any(m.priority == 1 for m in channels["slow"].sent):
            break
    stop.set()
    await running
    # Then no more than the window of marketing was ever inside the channel
    assert 0 < peak <= 4
    assert any(m.priority == 1 for m in channels["slow"].sent)

"""End to end over loopback: outbox → worker → SMPP → simulator → receipts → states.

Runs on SQLite and on PostgreSQL (``store_url``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from jingxin.config import ChannelSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message, MessagePart
from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.smsc.behaviour import Behaviour, preset
from jingxin.smsc.server import Simulator


def settings_for(port: int, **dispatch) -> Settings:
    return Settings(
        channels=[ChannelSettings(name="sim", port=port, window=20)],
        dispatch={
            "worker_name": "it-worker",
            "flush_interval": 0.02,
            "retry_base": 0.05,
            "tariffs": {"sim": 0.05},
            **dispatch,
        },
    )


def queue(
    store, n: int, *, text: str = "您好，验证码 123456", category: str = "notification"
):
    return enqueue(store, entries=[
        OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category=category, text=text,
                    idempotency_key=f"it-{category}-{len(text)}-{i}")
        for i in range(n)
    ])  # fmt: skip


async def drain(settings: Settings, store) -> object:
    worker = build_worker(settings, store)
    await start_channels(worker)
    try:
        return await worker.run(once=True, linger=5)
    finally:
        await close_channels(worker)


def by_state(store) -> dict[str, int]:
    with store.sessions() as s:
        return dict(
            s.execute(select(Message.state, func.count()).group_by(Message.state)).all()
        )


async def test_short_and_long_messages_are_delivered_part_by_part(store_url) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given 30 short and 5 three-part messages
        queue(store, 30)
        queue(store, 5, text="长" * 150)
        async with Simulator(behaviour=preset("happy")) as sim:
            # When a worker drains the outbox into the simulator
            tally = await drain(settings_for(sim.smpp_port), store)
            submits = sim.record.counts["submit_sm"]
        # Then all 35 are delivered, 45 submit_sm went out, and every part has its receipt
        assert by_state(store) == {"delivered": 35}
        assert submits == 30 + 5 * 3 and tally.submitted == 35
        with store.sessions() as s:
            parts = s.execute(
                select(MessagePart.state, func.count()).group_by(MessagePart.state)
            ).all()
            cost = s.execute(select(func.sum(Message.cost))).scalar_one()
        assert dict(parts) == {"delivered": 45}
        assert round(cost, 2) == round(45 * 0.05, 2)
    finally:
        store.dispose()


async def test_receipts_before_responses_and_a_flaky_smsc_lose_nothing(
    store_url,
) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        queue(store, 40, text="x" * 200)  # two parts each
        behaviour = Behaviour(
            receipt_before_response=True,
            receipt_delay=0.0,
            status_mix={"DELIVRD": 0.8, "UNDELIV": 0.2},
            seed=7,
        )
        async with Simulator(behaviour=behaviour) as sim:
            await drain(settings_for(sim.smpp_port), store)
        states = by_state(store)
        # Every message is final; the mix shows both outcomes; nothing is stuck
        assert sum(states.values()) == 40
        assert set(states) <= {"delivered", "undeliverable"}
        assert states.get("undeliverable", 0) > 0
    finally:
        store.dispose()


async def test_a_throttling_smsc_slows_the_worker_but_everything_is_delivered(
    store_url,
) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        queue(store, 60)
        async with Simulator(behaviour=Behaviour(tps=200.0)) as sim:
            await drain(settings_for(sim.smpp_port), store)
        assert by_state(store) == {"delivered": 60}
    finally:
        store.dispose()


async def test_an_smsc_that_drops_the_link_mid_batch_loses_nothing(store_url) -> None:
    from collections import Counter

    store = open_store(store_url, upgrade=True)
    try:
        # Given an SMSC that drops the connection on about 1 submit in 100
        queue(store, 300)
        async with Simulator(behaviour=Behaviour(disconnect=0.01, seed=3)) as sim:
            tally = await drain(settings_for(sim.smpp_port), store)
            submits = Counter(
                e.fields.get("destination_addr") for e in sim.record.of("submit_sm")
            )
        # Then every message ends delivered, and each resend is an unresolved submit, counted
        assert by_state(store) == {"delivered": 300}
        duplicates = sum(n - 1 for n in submits.values())
        with store.sessions() as s:
            counted = s.execute(select(func.sum(Message.unresolved))).scalar_one() or 0
        assert tally.unresolved == counted and duplicates <= counted
        assert counted > 0, "the SMSC never dropped the link: the test proved nothing"
    finally:
        store.dispose()


@pytest.mark.postgres
async def test_two_workers_share_the_outbox_without_sending_twice(pg_url) -> None:
    import asyncio
    from collections import Counter

    store = open_store(pg_url, upgrade=True)
    try:
        # Given 400 messages and two workers with different names on one PostgreSQL
        queue(store, 400)
        async with Simulator(behaviour=Behaviour(submit_latency=0.001)) as sim:
            workers = [
                build_worker(
                    settings_for(sim.smpp_port, worker_name=name, max_in_flight=20),
                    store,
                )
                for name in ("w1", "w2")
            ]
            for worker in workers:
                await start_channels(worker)
            # When both drain at once
            tallies = await asyncio.gather(
                *(w.run(once=True, linger=3) for w in workers)
            )
            for worker in workers:
                await close_channels(worker)
            submits = Counter(
                e.fields.get("destination_addr") for e in sim.record.of("submit_sm")
            )
        # Then both took a share, and no message was submitted twice
        assert all(t.submitted > 0 for t in tallies)
        assert sum(t.submitted for t in tallies) == 400
        assert len(submits) == 400 and max(submits.values()) == 1
        assert by_state(store) == {"delivered": 400}
    finally:
        store.dispose()

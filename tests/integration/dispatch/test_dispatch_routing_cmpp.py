"""Routing over two protocols: China Mobile numbers over CMPP, the rest over SMPP."""

from __future__ import annotations

from sqlalchemy import func, select

from jingxin.config import ChannelSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.smsc.behaviour import preset
from jingxin.smsc.server import Simulator


async def test_china_mobile_over_cmpp_the_rest_over_smpp(tmp_path, migrated_sqlite) -> None:
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        # Given 10 China Mobile (139) and 10 China Unicom (186) numbers
        numbers = [f"+86139{i:08d}" for i in range(10)] + [f"+86186{i:08d}" for i in range(10)]
        enqueue(store, entries=[
            OutboxEntry(tenant_id="default", msisdn=m, category="notification",
                        text="您的账单已出", idempotency_key=f"r-{m}")
            for m in numbers
        ])  # fmt: skip
        async with Simulator(behaviour=preset("happy"), cmpp_port=0) as sim:
            settings = Settings(
                channels=[
                    ChannelSettings(name="cm", protocol="cmpp", port=sim.cmpp_port,
                                    system_id="901234", source_addr="10690001"),
                    ChannelSettings(name="rest", port=sim.smpp_port),
                ],
                dispatch={"worker_name": "r", "flush_interval": 0.02,
                          "routes": [{"channel": "cm", "carriers": ["china_mobile"]},
                                     {"channel": "rest"}]},
            )  # fmt: skip
            worker = build_worker(settings, store)
            await start_channels(worker)
            try:
                # When the worker drains
                await worker.run(once=True, linger=5)
            finally:
                await close_channels(worker)
            counts = dict(sim.record.counts)
        # Then each carrier's messages went by its protocol, and all were delivered
        with store.sessions() as s:
            rows = s.execute(select(Message.channel, Message.state, func.count())
                             .group_by(Message.channel, Message.state)).all()  # fmt: skip
        assert sorted(rows) == [("cm", "delivered", 10), ("rest", "delivered", 10)]
        assert counts.get("submit_sm") == 10 and counts.get("CMPP_SUBMIT") == 10
    finally:
        store.dispose()

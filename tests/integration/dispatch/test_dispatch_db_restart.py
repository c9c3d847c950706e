"""The database goes away mid-drain (every connection cut, new ones refused for two
seconds, as in a restart or a failover) and comes back: the worker neither dies nor loses
a message. PostgreSQL only: it is the store that restarts under a running worker."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import func, select

from jingxin.config import ChannelSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.server import Simulator

# kill -9 and restarts on a timeline: run alone, after the parallel part (./dev test).
pytestmark = pytest.mark.serial

N = 3000
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def by_state(store) -> dict[str, int]:
    with store.sessions() as s:
        return dict(s.execute(select(Message.state, func.count()).group_by(Message.state)).all())


def outage(database: str, *, seconds: float) -> None:
    """Refuse new connections to ``database``, cut the open ones, wait, allow them again."""
    import time

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND pid <> pg_backend_pid()", (database,))  # fmt: skip
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')


async def wait_for(predicate, *, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.postgres
async def test_a_database_restart_mid_drain_loses_nothing(pg_url, caplog) -> None:
    database = pg_url.rsplit("/", 1)[1]
    store = open_store(pg_url, upgrade=True)
    watcher = open_store(pg_url)  # the test's own connections, apart from the worker's
    # Given 3,000 notifications and an SMSC that answers in 1 ms
    enqueue(store, entries=[
        OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category="notification",
                    text=f"账单提醒 {i}", idempotency_key=f"restart-{i}")
        for i in range(N)
    ])  # fmt: skip
    try:
        async with Simulator(behaviour=Behaviour(submit_latency=0.001, receipt_delay=0.01)) as sim:
            settings = Settings(
                channels=[ChannelSettings(name="sim", port=sim.smpp_port, window=20)],
                dispatch={"worker_name": "restart", "flush_interval": 0.02})  # fmt: skip
            worker = build_worker(settings, store)
            await start_channels(worker)
            stop = asyncio.Event()
            run = asyncio.create_task(worker.run(stop=stop))
            try:
                await wait_for(lambda: by_state(watcher).get("delivered", 0) >= 300, timeout=30)
                # When the database cuts every connection and refuses new ones for 2 s
                await asyncio.to_thread(outage, database, seconds=2.0)
                # Then the worker is still running, and drains everything once it is back
                assert not run.done(), run.exception() if run.done() else None
                await wait_for(lambda: by_state(watcher) == {"delivered": N}, timeout=60)
            finally:
                stop.set()
                await run
                await close_channels(worker)
            submits = sim.record.counts["submit_sm"]
        # And at most what was in flight at the cut went to the SMSC twice
        assert N <= submits <= N + worker.config.max_in_flight
        assert any("failed" in r.getMessage() for r in caplog.records), "the outage was not logged"
    finally:
        watcher.dispose()
        store.dispose()

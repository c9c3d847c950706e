"""Dispatch benchmarks: outbox enqueue, campaign to outbox, drain to the simulator.

The store is a temporary SQLite file unless ``JINGXIN_BENCH_STORE_URL`` names another
(e.g. an empty PostgreSQL database). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from jingxin.bench import benchmark


def _store(tmp: str):
    from jingxin.data.store import open_store

    url = (
        os.environ.get("JINGXIN_BENCH_STORE_URL")
        or f"sqlite:///{Path(tmp) / 'bench.db'}"
    )
    return open_store(url, upgrade=True)


def _entries(n: int, *, prefix: str = "b", category: str = "marketing"):
    from jingxin.dispatch.outbox import OutboxEntry

    return (OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category=category,
                        text="【精信】春季特惠，流量包五折。回T退订", idempotency_key=f"{prefix}{i}")
            for i in range(n))  # fmt: skip


@benchmark("outbox-enqueue", summary="bulk-insert N accepted messages into the outbox",
           default_scale=100_000)  # fmt: skip
def outbox_enqueue(scale: int) -> dict[str, Any]:
    from jingxin.dispatch.outbox import enqueue

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            started = time.perf_counter()
            result = enqueue(store, entries=_entries(scale))
            seconds = time.perf_counter() - started
            again = time.perf_counter()
            dup = enqueue(store, entries=_entries(min(scale, 10_000)))
            dup_seconds = time.perf_counter() - again
        finally:
            store.dispose()
    return {"dialect": store.engine.dialect.name, "rows": result.inserted,
            "seconds": round(seconds, 2), "rows_per_s": round(scale / seconds),
            "duplicates_skipped": dup.duplicates, "duplicate_pass_s": round(dup_seconds, 2)}  # fmt: skip


@benchmark("dispatch-drain", summary="drain N messages to the in-process simulator (one worker)"
           " with OTPs injected; messages/s and OTP accept→submit latency", default_scale=5_000)  # fmt: skip
def dispatch_drain(scale: int) -> dict[str, Any]:
    import asyncio

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            return asyncio.run(_drain(store, scale))
        finally:
            store.dispose()


async def _drain(store, scale: int) -> dict[str, Any]:
    import asyncio
    import statistics

    from sqlalchemy import func, select

    from jingxin.config import ChannelSettings, Settings
    from jingxin.data.store.models import Message, utc_now
    from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
    from jingxin.dispatch.outbox import enqueue
    from jingxin.smsc.behaviour import Behaviour
    from jingxin.smsc.record import Record
    from jingxin.smsc.server import Simulator

    with store.sessions() as session:
        if session.scalar(select(func.count()).select_from(Message)):
            raise SystemExit(
                "dispatch-drain needs an empty outbox (JINGXIN_BENCH_STORE_URL)"
            )
    enqueue(store, entries=_entries(scale))
    async with Simulator(
        behaviour=Behaviour(receipt_delay=0.01), record=Record(keep=10_000)
    ) as sim:
        settings = Settings(channels=[ChannelSettings(name="sim", port=sim.smpp_port, window=100)],
                            dispatch={"worker_name": "bench", "max_in_flight": 400})  # fmt: skip
        worker = build_worker(settings, store)
        await start_channels(worker)
        started = time.perf_counter()
        stop = asyncio.Event()
        run = asyncio.create_task(worker.run(stop=stop))
        for k in range(20):  # one OTP every 100 ms while the backlog drains
            await asyncio.sleep(0.1)
            enqueue(store, entries=_entries(1, prefix=f"otp{k}-", category="otp"))
        while not worker._nothing_left(horizon=utc_now()):
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        stop.set()
        tally = await run
        await close_channels(worker)
    latencies = _otp_latencies(store)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"dialect": store.engine.dialect.name, "messages": tally.submitted,
            "seconds": round(seconds, 2), "messages_per_s": round(tally.submitted / seconds),
            "otp_p50_ms": round(q[49] * 1000, 1), "otp_p99_ms": round(q[98] * 1000, 1),
            "note": "seconds include waiting for the last receipts; OTP latency is "
                    "accepted (created_at) to submit_sm_resp (submitted_at), an upper bound"}  # fmt: skip


def _otp_latencies(store) -> list[float]:
    from sqlalchemy import select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        rows = session.execute(select(Message.created_at, Message.submitted_at)
                               .where(Message.category == "otp")).all()  # fmt: skip
    return [(sent - made).total_seconds() for made, sent in rows if sent is not None]

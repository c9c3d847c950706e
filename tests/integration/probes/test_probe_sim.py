"""A dial test end to end over loopback: probe → simulator's POST /mo → SMPP deliver_sm →
a real worker (MO inbox, handlers, the keyword auto-reply, outbox) → submit_sm back to the
simulator → GET /mt → the probe's verdict and its ``probe_runs`` row.

The hall's own handler is another module's; a ``[[inbox.auto_replies]]`` keyword reply
stands in for it here - it travels the same road (handler reply → delivery entry → outbox
→ worker). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from jingxin.config import ChannelSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message, MoMessage
from jingxin.data.store.models.hall import ProbeRun
from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
from jingxin.probes import Probe, SimulatorChannel, run_and_record
from jingxin.smsc.server import Simulator

pytestmark = pytest.mark.timeout(30)

REPLY = "尊敬的客户，您的账户余额为12.50元。"


def settings_for(port: int) -> Settings:
    return Settings(
        channels=[ChannelSettings(name="sim", port=port, source_addr="10086")],
        dispatch={"worker_name": "probe-it", "flush_interval": 0.02, "retry_base": 0.05},
        inbox={"auto_replies": [{"keyword": "CXYE", "reply": REPLY, "service_number": "10086"}]},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def worker_on_simulator(store) -> AsyncIterator[SimulatorChannel]:
    """The simulator, a real worker bound to it, and the probes' way in to its MO endpoint."""
    async with Simulator(http_port=0) as sim:
        worker = build_worker(settings_for(sim.smpp_port), store)
        await start_channels(worker)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop=stop))
        try:
            yield SimulatorChannel(f"http://127.0.0.1:{sim.http_port}")
        finally:
            stop.set()
            await running
            await close_channels(worker)


async def test_a_probe_sees_the_keyword_reply_through_a_real_worker(store_url) -> None:
    store = open_store(store_url, upgrade=True)
    probes = [
        Probe("balance", "+8613900000001", "10086", "cxye", re.compile(r"余额为\d+(\.\d+)?元"), 5000),
        Probe("menu", "+8613900000002", "10086", "CXYE", re.compile(r"菜单"), 5000),
    ]  # fmt: skip
    try:
        # When the probes run against the simulator the worker is bound to
        async with worker_on_simulator(store) as channel:
            report = await run_and_record(probes, channel=channel, store=store, timeout=8.0)
        # Then the balance probe passed on the auto-reply, and the menu probe failed on it
        balance, menu = report.results
        assert balance.ok, balance.reason
        assert balance.reply_text.endswith(REPLY) and 0 < balance.latency_ms < 5000
        assert not menu.ok and menu.reason == f"reply '{menu.reply_text}' does not match /菜单/"
        # And the road was the ordinary one: the MO stored, each reply through the outbox once
        with store.sessions() as session:
            mo = session.scalars(select(MoMessage).order_by(MoMessage.id)).all()
            replies = session.scalars(select(Message).where(Message.source == "inbox")).all()
            rows = session.scalars(select(ProbeRun).order_by(ProbeRun.probe)).all()
        assert sorted(m.msisdn for m in mo) == ["+8613900000001", "+8613900000002"]
        # (the handset shows what the outbox holds: signature and all, reassembled)
        assert len(replies) == 2 and {m.text for m in replies} == {balance.reply_text}
        # And the run is recorded, one row per probe under one run id
        assert [(r.probe, r.ok, r.run_id) for r in rows] == [
            ("balance", True, report.run_id), ("menu", False, report.run_id)]
        assert rows[0].reply_text == balance.reply_text and rows[0].latency_ms == pytest.approx(balance.latency_ms)
    finally:
        store.dispose()


async def test_the_same_dial_twice_within_the_duplicate_window_is_answered_twice(store_url) -> None:
    # An SMPP MO carries no SMSC id: only the acknowledgement tells the subscriber's second
    # identical text from the SMSC delivering the first again.
    store = open_store(store_url, upgrade=True)
    probe = Probe("balance", "+8613900000001", "10086", "CXYE", re.compile(r"余额为"), 5000)
    try:
        # When the same dial runs twice, a moment apart (well within the 600-s window)
        async with worker_on_simulator(store) as channel:
            first = await run_and_record([probe], channel=channel, store=store, timeout=8.0)
            second = await run_and_record([probe], channel=channel, store=store, timeout=8.0)
        # Then both are answered: two MO stored, two replies through the outbox
        assert first.results[0].ok and second.results[0].ok, (first.results, second.results)
        with store.sessions() as session:
            mo = session.scalars(select(MoMessage.text)).all()
            replies = session.scalars(select(Message.id).where(Message.source == "inbox")).all()
        assert mo == ["CXYE", "CXYE"] and len(replies) == 2
    finally:
        store.dispose()

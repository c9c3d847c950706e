"""The scheduler: runs never overlap, keep their pace, survive a failing run, stop when
told; each tick runs the dial tests and then the hall's reconcile hook."""

from __future__ import annotations

import asyncio
import logging
import sys
import types

import pytest
from probe_fakes import closed_port, probe

import jingxin.hall
from jingxin.config import Settings
from jingxin.data.store.engine import open_store
from jingxin.probes import HallTick, Reply, SimulatorChannel, hall_reconcile, run_schedule

pytestmark = pytest.mark.timeout(30)


class Ticks:
    """A tick that takes ``seconds`` and raises on the runs listed in ``fail``."""

    def __init__(self, seconds: float, *, fail: set[int] = frozenset()) -> None:
        self.seconds, self.fail = seconds, fail
        self.starts: list[float] = []
        self.running = self.most_at_once = 0

    async def __call__(self, n: int) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
            if n in self.fail:
                raise RuntimeError(f"run {n} broke")
        finally:
            self.running -= 1


async def test_runs_keep_the_interval_start_to_start_and_a_failure_does_not_stop_them(caplog) -> None:
    # Given ticks of 0.06 s every 0.1 s, the second of which raises
    ticks = Ticks(0.06, fail={2})
    done = await run_schedule(ticks, interval=0.1, iterations=4)
    # Then four ran, 0.1 s apart start to start (not 0.16: the tick's own time is inside)
    assert done == 4 and len(ticks.starts) == 4
    gaps = [b - a for a, b in zip(ticks.starts, ticks.starts[1:], strict=False)]
    assert all(0.09 <= gap < 0.15 for gap in gaps), gaps
    # And the failure was logged with its run number
    assert any("scheduled run 2 failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_run_longer_than_the_interval_is_never_overlapped(caplog) -> None:
    ticks = Ticks(0.15)
    await run_schedule(ticks, interval=0.05, iterations=3)
    gaps = [b - a for a, b in zip(ticks.starts, ticks.starts[1:], strict=False)]
    assert ticks.most_at_once == 1 and all(0.15 <= gap < 0.25 for gap in gaps), gaps
    assert any("took longer than the interval" in r.getMessage() for r in caplog.records)


async def test_stop_ends_the_schedule_between_runs() -> None:
    stop = asyncio.Event()
    ticks = Ticks(0.0)
    asyncio.get_running_loop().call_later(0.25, stop.set)
    done = await run_schedule(ticks, interval=0.1, stop=stop)
    assert done == 3  # at 0, 0.1 and 0.2; the wait for 0.3 ends at the stop


class AnsweringChannel:
    """A probe channel whose subscriber is answered at once with a balance; keeps the MO
    it was given."""

    where = "answering channel"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def check(self) -> None:
        pass

    async def send_mo(self, *, source: str, destination: str, text: str) -> int:
        self.sent.append((source, destination, text))
        return len(self.sent)

    async def replies(self, *, to: str, after: int, wait: float) -> list[Reply]:
        return [Reply(after + 1, "10086", "【中国移动】您的余额12元。")]


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "sched.db"))
    yield opened
    opened.dispose()


async def test_a_tick_reconciles_even_when_the_dial_tests_cannot_run(store, caplog) -> None:
    # Given a simulator that is not there and a reconcile hook that records its calls
    calls = []
    tick = HallTick(settings=Settings(), store=store, probes=[probe()],
                    channel=SimulatorChannel(f"http://127.0.0.1:{closed_port()}"),
                    reconcile=lambda settings, store: calls.append(store))  # fmt: skip
    report = await tick(1)
    # Then the probe failed for the one reason, and the hall was still reconciled
    assert report.unreachable and not report.ok and calls == [store]

    # And a reconcile that raises is logged, the tick still returns its report
    def broken(settings, store):
        raise RuntimeError("BOSS down")

    tick.reconcile = broken
    assert (await tick(2)).unreachable
    assert any("scheduled run 2: the hall reconcile failed" in r.getMessage() for r in caplog.records)


async def test_two_ticks_in_a_row_both_dial(store) -> None:
    # Given a channel that answers every probe, and a reconcile hook that records its calls
    channel, calls = AnsweringChannel(), []
    tick = HallTick(settings=Settings(), store=store, probes=[probe()], channel=channel,
                    reconcile=lambda settings, store: calls.append(1))  # fmt: skip
    # When two ticks run back to back (the second within seconds of the first's MO)
    first, second = await tick(1), await tick(2)
    # Then each sent the same MO and got its answer: a repeated dial is dialled again
    assert first is not None and second is not None, "a tick skipped the dial tests"
    assert first.ok and second.ok and first.run_id != second.run_id
    assert channel.sent == [("+8613900000001", "10086", "CXYE")] * 2 and calls == [1, 1]


def test_the_reconcile_hook_is_skipped_when_the_hall_is_off(store, monkeypatch) -> None:
    from jingxin.config import HallSettings

    monkeypatch.setitem(sys.modules, "jingxin.hall.orders", None)  # would fail if imported
    assert hall_reconcile(Settings(hall=HallSettings(enabled=False)), store) is None


def test_the_reconcile_hook_calls_the_hall_with_its_boss(store, monkeypatch) -> None:
    from jingxin.hall.boss import StoreBoss

    # Given a hall orders module with reconcile(ctx)
    seen = []
    orders = types.ModuleType("jingxin.hall.orders")
    orders.reconcile = lambda ctx: seen.append(ctx) or "2 settled"
    monkeypatch.setitem(sys.modules, "jingxin.hall.orders", orders)
    monkeypatch.setattr(jingxin.hall, "orders", orders, raising=False)
    # When the hook runs with the hall enabled, Then reconcile gets the store and a StoreBoss
    assert hall_reconcile(Settings(hall={"boss_timeout_seconds": 1.5}), store) == "2 settled"
    [ctx] = seen
    assert ctx.store is store and isinstance(ctx.boss, StoreBoss) and ctx.boss.timeout_seconds == 1.5
    # And not at all with the hall disabled
    assert hall_reconcile(Settings(hall={"enabled": False}), store) is None and len(seen) == 1

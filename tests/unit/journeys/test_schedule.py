"""The scheduler's journey duties: the store lease (one scheduler at a time), the days due
for a scan (missed ones caught up, oldest first), and a tick that scans, enrols, advances."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from textwrap import dedent

import pyarrow as pa
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from jingxin.config import Settings
from jingxin.content import catalog
from jingxin.content.library import TemplateDocument
from jingxin.data.store.engine import open_store
from jingxin.data.store.models import JourneyEnrolment, JourneyRun, SchedulerLock
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.journeys.schedule import JourneyDuties, acquire, due_days, release, renew
from jingxin.journeys.trigger import TriggerOutput
from jingxin.journeys.triggers import TRIGGERS
from jingxin.probes.scheduler import LeasedTick

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)  # 10:00 in Beijing: past an 08:30 scan
TTL = timedelta(minutes=10)
SH = "Asia/Shanghai"


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    yield opened
    opened.dispose()


def test_the_lease_refuses_a_second_holder_until_it_expires(store_url) -> None:
    store = open_store(store_url, upgrade=True)
    try:
        # Given host A holds the lease
        first = acquire(store, "scheduler", "a:1", ttl=TTL, now=NOW)
        assert first.acquired and first.expires_at == NOW + TTL
        # When B asks before it expires, Then B is told who holds it until when
        second = acquire(store, "scheduler", "b:2", ttl=TTL, now=NOW + timedelta(minutes=9))
        assert (second.acquired, second.holder, second.expires_at) == (False, "a:1", NOW + TTL)
        # And A asking again extends its own lease, keeping when it was first taken
        assert acquire(store, "scheduler", "a:1", ttl=TTL, now=NOW + timedelta(minutes=5)).acquired
        assert renew(store, "scheduler", "a:1", ttl=TTL, now=NOW + timedelta(minutes=6))
        # When A's lease runs out without renewal, Then B takes it over and A cannot renew
        later = NOW + timedelta(minutes=6) + TTL
        taken = acquire(store, "scheduler", "b:2", ttl=TTL, now=later)
        assert (taken.acquired, taken.holder, taken.expires_at) == (True, "b:2", later + TTL)
        assert not renew(store, "scheduler", "a:1", ttl=TTL, now=later)
        assert not release(store, "scheduler", "a:1")  # not A's to give up
        with store.transaction() as session:
            (row,) = session.scalars(select(SchedulerLock))
            assert (row.holder, row.acquired_at) == ("b:2", later)
        # And once B releases it, anyone may take it at once
        assert release(store, "scheduler", "b:2")
        assert acquire(store, "scheduler", "c:3", ttl=TTL, now=later).acquired
    finally:
        store.dispose()


def test_two_schedulers_racing_for_the_lease_get_one_winner(pg_url) -> None:
    store = open_store(pg_url, upgrade=True)
    try:
        for round_ in range(3):  # each round: a fresh lock, eight contenders at once
            barrier, won = threading.Barrier(8), []

            def contend(n: int, name: str = f"race{round_}") -> None:
                barrier.wait()
                if acquire(store, name, f"host:{n}", ttl=TTL, now=NOW).acquired:
                    won.append(n)

            threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(won) == 1, won
    finally:
        store.dispose()


def done(store, day: date, triggers=tuple(TRIGGERS), state: str = "done") -> None:
    with store.transaction() as session:
        for name in triggers:
            session.add(JourneyRun(trigger=name, day=day, state=state))


def test_due_days_catch_up_the_missed_days_oldest_first(store) -> None:
    today = date(2026, 10, 8)
    due = lambda now, **kw: due_days(store, now=now, scan_at="08:30", tz=SH, **kw)  # noqa: E731
    # Given a store that never scanned: only the last day whose scan time passed
    assert due(NOW) == [today]
    assert due(datetime(2026, 10, 8, 0, 0, tzinfo=UTC)) == [today - timedelta(days=1)]  # 08:00 local
    # Given the scan of 5 October done, 6 October half done, 7 October not run at all
    done(store, date(2026, 10, 5))
    done(store, date(2026, 10, 6), triggers=["birthday", "holiday"])
    done(store, date(2026, 10, 6), triggers=["usage"], state="running")
    # Then 6, 7 and 8 October are due, oldest first
    assert due(NOW) == [date(2026, 10, 6), date(2026, 10, 7), today]
    # And only the triggers asked for count: 6 October is done for birthday and holiday
    assert due(NOW, triggers=["birthday", "holiday"]) == [date(2026, 10, 7), today]
    # And a scheduler down for weeks catches up at most catch_up_days days
    later = NOW + timedelta(days=30)
    assert due(later, catch_up_days=3) == [date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7)]
    # And a day done is never due again
    done(store, today)
    assert today not in due(NOW)


JOURNEY = dedent("""\
    name: welcome
    category: notification
    entry: {trigger: birthday}
    steps:
      - {id: hello, type: send, template: journey.hello}
    """)


class FakeScan:
    """Stands in for jingxin.journeys.scan: records the days it ran and marks them done."""

    def __init__(self, store, *, fail: set[date] = frozenset()) -> None:
        self.store, self.fail, self.days = store, fail, []

    def run_scan(self, settings, store, warehouse, *, day: date) -> None:
        self.days.append(day)
        if day in self.fail:
            raise RuntimeError(f"scan of {day} broke")
        done(store, day, triggers=settings.journeys.triggers or tuple(TRIGGERS))


@pytest.fixture
def scan(store, monkeypatch) -> FakeScan:
    fake = FakeScan(store)
    module = types.ModuleType("jingxin.journeys.scan")
    module.run_scan = fake.run_scan
    monkeypatch.setitem(sys.modules, "jingxin.journeys.scan", module)
    return fake


@pytest.fixture
def birthdays(monkeypatch) -> list[date]:
    """The birthday trigger's candidates: two numbers each day it is asked."""
    asked: list[date] = []

    class Birthday:
        name = "birthday"

        def candidates(self, ctx):
            asked.append(ctx.day)
            return TriggerOutput(pa.table({"msisdn": ["+8613900000001", "+8613900000002"]}))

    monkeypatch.setattr("jingxin.journeys.triggers.trigger", lambda name: Birthday())
    return asked


def approve(store, code: str, body: str) -> None:
    with store.transaction() as session:
        ensure_default_tenant(session)
        made = catalog.add_template(session, document=TemplateDocument(
            code=code, category="notification", body=body))
        catalog.submit_template(session, template_id=made.id)
        catalog.approve_template(session, template_id=made.id, reviewer="r")


def settings_for(tmp_path, **journeys) -> Settings:
    (tmp_path / "journeys").mkdir(exist_ok=True)
    (tmp_path / "journeys" / "welcome.yaml").write_text(JOURNEY, encoding="utf-8")
    return Settings(journeys={"journeys_dir": str(tmp_path / "journeys"), **journeys})


def test_a_tick_scans_the_due_days_enrols_and_advances_each_once(store, scan, birthdays,
                                                                 tmp_path, caplog) -> None:  # fmt: skip
    approve(store, "journey.hello", "生日快乐！精信祝您万事顺意。")
    settings = settings_for(tmp_path, triggers=["birthday", "holiday"])
    done(store, date(2026, 10, 5), triggers=["birthday", "holiday"])  # the last day it ran
    scan.fail = {date(2026, 10, 7)}
    clock = [NOW]
    duties = JourneyDuties(settings=settings, store=store, warehouse=lambda: "the warehouse",
                           clock=lambda: clock[0])  # fmt: skip
    # When the first tick runs, Then the three missed days are scanned oldest first,
    # the one that fails is logged and the others still run
    counts = duties.run(1)
    assert scan.days == [date(2026, 10, 6), date(2026, 10, 7), date(2026, 10, 8)]
    assert any("daily scan of 2026-10-07 failed" in r.getMessage() for r in caplog.records)
    # And the journey enrolled today's birthday candidates (its first run) and sent to them
    assert birthdays == [date(2026, 10, 8)] and counts["sent"] == 2
    with store.transaction() as session:
        entries = {(e.entry_key, e.state) for e in session.scalars(select(JourneyEnrolment))}
    assert entries == {("2026-10-08", "done")}
    # When the next tick runs soon after, Then nothing is scanned or enrolled again
    clock[0] = NOW + timedelta(minutes=5)
    assert duties.run(2) == Counter() and len(scan.days) == 3 and len(birthdays) == 1
    # And the failed day is tried again once RETRY_AFTER has passed
    scan.fail = set()
    clock[0] = NOW + timedelta(hours=1)
    duties.run(3)
    assert scan.days[3:] == [date(2026, 10, 7)]


class Part:
    def __init__(self) -> None:
        self.runs: list[int] = []

    async def __call__(self, n: int) -> None:
        self.runs.append(n)


async def test_a_second_scheduler_runs_nothing_while_the_first_holds_the_lease(store) -> None:
    first, second = Part(), Part()
    held = []
    a = LeasedTick(store=store, holder="a:1", ttl=TTL, parts=[first])
    b = LeasedTick(store=store, holder="b:2", ttl=TTL, parts=[second], on_held=held.append)
    assert await a(1) and not await b(1)
    assert first.runs == [1] and second.runs == [] and held[0].holder == "a:1"
    # When the first stops (releases), Then the second runs its parts at its next tick
    await asyncio.to_thread(a.release)
    assert await b(2) and second.runs == [2]
    assert not await a(3) and first.runs == [1]


def test_the_scheduler_command_waits_while_another_holds_the_lock(tmp_path, migrated_sqlite, monkeypatch, scan) -> None:
    # Given a configured scheduler (journeys on) whose lock another machine holds
    (tmp_path / "journeys").mkdir()
    config = tmp_path / "jingxin.toml"
    config.write_text(dedent(f"""\
        [store]
        url = "sqlite:///{tmp_path / 'cli.db'}"
        [hall]
        enabled = false
        [journeys]
        triggers = ["birthday"]
        journeys_dir = "{tmp_path / 'journeys'}"
        """), encoding="utf-8")
    monkeypatch.setenv("JINGXIN_CONFIG", str(config))
    from jingxin.cli import app

    cli_store = open_store(migrated_sqlite(tmp_path / "cli.db"))
    scan.store = cli_store
    try:
        assert acquire(cli_store, "scheduler", "other-host:77", ttl=TTL).acquired
        result = CliRunner().invoke(app, ["scheduler", "--once"])
        assert result.exit_code == 0, result.output
        assert "the scheduler lock is held by other-host:77 until" in result.output
        assert scan.days == []
        # When the other releases it, Then the scan of today runs
        release(cli_store, "scheduler", "other-host:77")
        result = CliRunner().invoke(app, ["scheduler", "--once"])
        assert result.exit_code == 0, result.output
        assert "held by" not in result.output and len(scan.days) == 1
        with cli_store.transaction() as session:  # and the lock was given back on exit
            assert list(session.scalars(select(SchedulerLock))) == []
    finally:
        cli_store.dispose()

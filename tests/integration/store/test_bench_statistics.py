"""The way-back benchmarks' statistics (jingxin.bench.statistics): on a server without
autovacuum the store is analysed once, when the MO asked for are stored, and the report
says when; on a server with it, nothing is done and the report says so."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text

from jingxin.bench.mo import analyse_at
from jingxin.bench.statistics import analysed_once
from jingxin.data.store.models import MoMessage

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _store_mo(store, first: int, count: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(MoMessage), [
            dict(channel="sim", msisdn=f"+8613900{i:06d}", service_number="10086", text="0",
                 coding=0, parts=1, parts_expected=1, complete=True, undecodable=False,
                 received_at=AT, dedup_key=f"k{i}") for i in range(first, first + count)])  # fmt: skip


def _analysed(store) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                                 "WHERE relname = 'mo_messages'")).scalar_one()  # fmt: skip


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_the_store_is_analysed_once_when_the_mo_are_in_unless_autovacuum_does_it(store, store_url) -> None:
    with store.engine.connect() as conn:
        autovacuum = conn.execute(text("SHOW autovacuum")).scalar_one()
    with analysed_once(store_url, mo=50, every=0.02) as report:
        _store_mo(store, 0, 20)
        time.sleep(0.3)
        assert "analysed_at_mo" not in report  # not yet: 20 of 50
        _store_mo(store, 20, 40)
        deadline = time.monotonic() + 10
        while autovacuum == "off" and "analysed_at_mo" not in report and time.monotonic() < deadline:
            time.sleep(0.05)
    assert report["autovacuum"] == autovacuum
    if autovacuum == "off":
        assert report["analysed_at_mo"] == 60 and report["analyse_ms"] >= 0
        assert _analysed(store)
    else:  # the server's own autovacuum keeps the statistics: the bench does nothing
        assert set(report) == {"autovacuum"}


def test_a_run_analyses_at_a_thousand_mo_or_a_quarter_of_a_small_run() -> None:
    assert [analyse_at(n) for n in (1, 8, 400, 4000, 20_000)] == [1, 2, 100, 1000, 1000]


def test_the_worker_is_told_when_nothing_keeps_the_statistics(store, store_url) -> None:
    from jingxin.data.store.engine import server_advice

    advice = server_advice(store)
    if store.engine.dialect.name == "sqlite":
        assert advice == []
        return
    with store.engine.connect() as conn:
        autovacuum = conn.execute(text("SHOW autovacuum")).scalar_one()
    if autovacuum == "on":
        assert advice == []
    else:
        assert len(advice) == 1 and "autovacuum is off" in advice[0] and "ANALYZE" in advice[0]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_cpu_per_mo_counts_the_worker_its_children_and_the_store_backends(store, store_url) -> None:
    import subprocess
    import sys

    from jingxin.bench.cpu import children, cpu_per_mo, cpu_seconds

    # Given a "worker" (this process) with a child that burns 0.3 s of CPU once started
    code = "import sys, time\nsys.stdin.readline()\nend = time.process_time() + 0.3\n" \
           "while time.process_time() < end: pass\ntime.sleep(30)\n"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        with store.engine.connect() as conn, \
                cpu_per_mo(workers=[os.getpid()], smsc=None, store_url=store_url) as cpu:  # fmt: skip
            assert child.pid in children(os.getpid())
            child.stdin.write("go\n")
            child.stdin.flush()
            deadline = time.monotonic() + 20
            while (cpu_seconds(child.pid) or 0) < 0.3 and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.execute(text("SELECT count(*) FROM generate_series(1, 300000)")).scalar_one()
            cpu["mo"] = 100
    finally:
        child.kill()
        child.wait()
    # Then each part is there, per MO, in ms: the child's 0.3 s is 3 ms a MO
    assert cpu["handlers_ms"] >= 2.9 and cpu["postgres_ms"] > 0 and cpu["smsc_ms"] == 0
    assert cpu["total_ms"] >= cpu["handlers_ms"] + cpu["postgres_ms"]

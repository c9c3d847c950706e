"""The MO handlers in a process of their own (``[inbox] handler_mode``), on PostgreSQL: the
child answers the MO the worker stored (an unsubscribe recorded once, one reply queued,
the outcome written), a dead child is reported and replaced, a child never outlives its
worker (kill -9 included), and "auto" picks a process on PostgreSQL, a thread on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from jingxin.config import Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Message, MoOutcome, OptOut
from jingxin.dispatch.bootstrap import MoHandlerRunner, default_handlers
from jingxin.dispatch.handler_process import (
    HandlerProcess,
    HandlerProcesses,
    HandlerProcessError,
    by_sender,
)
from jingxin.dispatch.mo_inbox import InboxRules, store_parts
from jingxin.domain.sms import MoPart
from jingxin.errors import ConfigError

pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
RULES = InboxRules()


@pytest.fixture
def runner(store):
    process = HandlerProcess(Settings(), store_url=store.engine.url.render_as_string(hide_password=False))
    process.start()
    yield process
    process.close()


def store_mo(store, texts: dict[str, str]) -> list[int]:
    """Short MO (GSM-7 text) from each number, as a channel hands them over; their ids."""
    now = datetime.now(UTC)
    parts = [MoPart(protocol="smpp", source=number, destination="10690001", coding=0,
                    payload=text.encode(), received_at=now) for number, text in texts.items()]  # fmt: skip
    with store.engine.begin() as conn:
        tally = store_parts(conn, items=[("sim", p) for p in parts], now=now, rules=RULES)
    return [a.mo_id for a in tally.assembled]


def counts(store) -> tuple[int, int, int]:
    with store.sessions() as s:
        return (s.execute(select(func.count()).select_from(OptOut)).scalar_one(),
                s.execute(select(func.count()).select_from(Message).where(Message.source == "inbox")).scalar_one(),
                s.execute(select(func.count()).select_from(MoOutcome)).scalar_one())  # fmt: skip


def test_the_child_answers_the_mo_the_worker_stored_once(store, runner) -> None:
    # Given two unsubscribes and an MO no handler wants, stored by the worker
    ids = store_mo(store, {"8613700000001": "TD", "8613700000002": "td", "8613700000003": "hello"})
    # When the worker hands their ids to the handler process, twice (a retry after a crash)
    runner.handle_ids(ids)
    runner.handle_ids(ids)
    # Then two opt-outs, two replies queued, three outcomes: each effect once
    assert counts(store) == (2, 2, 3)
    # And nothing is left pending for a sweep
    assert runner() is False


def test_two_children_answer_a_batch_shared_by_sender_once(store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    pool = HandlerProcesses([HandlerProcess(Settings(), store_url=url) for _ in range(2)])
    pool.start()
    try:
        # Given eight unsubscribes and two MO no handler wants, from ten numbers
        texts = {f"86137000002{i:02d}": "TD" for i in range(8)}
        texts |= {"8613700000290": "hello", "8613700000291": "hi"}
        now = datetime.now(UTC)
        parts = [MoPart(protocol="smpp", source=number, destination="10690001", coding=0,
                        payload=text.encode(), received_at=now) for number, text in texts.items()]  # fmt: skip
        with store.engine.begin() as conn:
            assembled = store_parts(conn, items=[("sim", p) for p in parts], now=now,
                                    rules=RULES).assembled  # fmt: skip
        groups = by_sender(assembled, 2)
        assert all(groups)  # both children get some (the hash spreads ten numbers)
        # When the two children answer their groups at once, twice (a retry after a crash)
        pool.handle_split(groups)
        pool.handle_split(groups)
        # Then each effect once: eight opt-outs, eight replies, ten outcomes
        assert counts(store) == (8, 8, 10)
        assert pool() is False  # nothing left pending
    finally:
        pool.close()


def test_a_sweep_through_the_child_answers_whatever_is_pending(store, runner) -> None:
    store_mo(store, {f"86137000001{i:02d}": "TD" for i in range(5)})
    assert runner() is False  # five, below the batch limit: not behind
    assert counts(store) == (5, 5, 5)


def test_a_child_that_died_between_calls_is_replaced(store, runner, caplog) -> None:
    # Given a child killed between two calls (an out-of-memory kill, say)
    ids = store_mo(store, {"8613700000011": "TD"})
    os.kill(runner._process.pid, signal.SIGKILL)
    runner._process.join(timeout=10)
    # When the worker asks again, a new child answers, and the death is logged
    runner.handle_ids(ids)
    assert counts(store) == (1, 1, 1)
    assert "died (exit code -9)" in caplog.text


def test_a_child_that_dies_during_a_call_fails_the_call_and_the_mo_stay_pending(store, runner) -> None:
    ids = store_mo(store, {"8613700000012": "TD"})
    # Given a call on its way when the child is killed
    os.kill(runner._process.pid, signal.SIGSTOP)  # it cannot answer before it dies
    runner._conn.send(("ids", ids))
    os.kill(runner._process.pid, signal.SIGKILL)
    # Then the worker hears that it died, and nothing was done for the MO
    with pytest.raises(HandlerProcessError, match="died"):
        runner._receive()
    assert counts(store) == (0, 0, 0)
    # And the next call answers it
    runner.handle_ids(ids)
    assert counts(store) == (1, 1, 1)


def test_a_call_to_a_child_that_died_unseen_goes_to_a_new_one(store, runner, caplog) -> None:
    ids = store_mo(store, {"8613700000013": "TD"})
    # Given a child that died, but whose exit was not finished when the next call looked
    # (a killed child closes its pipe before it can be reaped)
    dead = runner._process
    os.kill(dead.pid, signal.SIGKILL)
    dead.join(timeout=10)
    dead.is_alive = lambda: True
    # When the worker asks, Then a new child answers the call, and the death is logged
    runner.handle_ids(ids)
    assert counts(store) == (1, 1, 1)
    assert runner._process is not dead
    assert "had died; starting a new one" in caplog.text


# A worker in miniature: starts a handler process, prints its pid, then waits to be killed.
PARENT = """
import sys, time
from jingxin.config import Settings
from jingxin.dispatch.handler_process import HandlerProcess
runner = HandlerProcess(Settings(), store_url=sys.argv[1])
runner.start()
print(runner._process.pid, flush=True)
time.sleep(120)
"""


def test_the_child_dies_with_its_worker_even_by_kill_9(store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, url], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child), "the handler process outlived its worker"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie is dead, awaiting its reaper
    except FileNotFoundError:
        return False


def test_a_handler_set_up_that_fails_in_the_child_reads_as_in_the_worker(store) -> None:
    # Given a hall menu file that is not there
    settings = Settings(hall={"menu_path": "/nonexistent/menu.yaml"})
    # Then starting the handler process raises the same one-line error as thread mode
    with pytest.raises(ConfigError, match="cannot read the hall menu file"):
        default_handlers(settings, store)


def test_auto_is_a_process_on_postgresql_and_a_thread_on_sqlite(store, tmp_path, migrated_sqlite) -> None:
    on_pg = default_handlers(Settings(), store)
    try:  # two handler processes by default; one when asked
        assert isinstance(on_pg, HandlerProcesses) and len(on_pg.children) == 2
        assert all(child._process.is_alive() for child in on_pg.children)
    finally:
        on_pg.close()
    one = default_handlers(Settings(inbox={"handler_processes": 1}), store)
    try:
        assert isinstance(one, HandlerProcess)
    finally:
        one.close()
    sqlite = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        assert isinstance(default_handlers(Settings(), sqlite), MoHandlerRunner)
        with pytest.raises(ConfigError, match="needs PostgreSQL"):
            default_handlers(Settings(inbox={"handler_mode": "process"}), sqlite)
    finally:
        sqlite.dispose()

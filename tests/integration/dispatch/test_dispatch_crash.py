"""Crash safety at small scale: kill -9 a worker process mid-drain on PostgreSQL, restart it,
and check that every message ends in exactly one final state and duplicates are counted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jingxin.data.store import open_store
from jingxin.data.store.models import Message, utc_now
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.smsc.behaviour import Behaviour

N = 1500
JINGXIN = str(Path(sys.executable).with_name("jingxin"))


def worker_env(pg_url: str, port: int, tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "JINGXIN_STORE__URL": pg_url,
        "JINGXIN_CONFIG": str(tmp_path / "none.toml"),
        "JINGXIN_CHANNELS": json.dumps([{"name": "sim", "port": port, "window": 50}]),
        "JINGXIN_DISPATCH__WORKER_NAME": "crash-worker",
        "JINGXIN_DISPATCH__RECEIPT_GRACE": "0",
    }


def counts(store) -> dict[str, int]:
    with store.sessions() as s:
        return dict(
            s.execute(select(Message.state, func.count()).group_by(Message.state)).all()
        )


@pytest.mark.postgres
def test_kill_9_mid_drain_then_restart(pg_url, tmp_path, threaded_simulator) -> None:
    store = open_store(pg_url, upgrade=True)
    now = utc_now()
    # Given 1,500 notifications valid for 10 s, and an SMSC that answers in 2 ms
    enqueue(store, entries=[
        OutboxEntry(tenant_id="default", msisdn=f"+86139{i:08d}", category="notification",
                    text=f"账单提醒 {i}", idempotency_key=f"crash-{i}",
                    expires_at=now + timedelta(seconds=10))
        for i in range(N)
    ])  # fmt: skip
    with threaded_simulator(
        Behaviour(submit_latency=0.002, receipt_delay=0.02)
    ) as threaded:
        env = worker_env(pg_url, threaded.sim.smpp_port, tmp_path)
        # When a worker process is killed with SIGKILL once a few hundred are out
        first = subprocess.Popen([JINGXIN, "worker"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = N - counts(store).get("queued", 0)
            if done >= 300:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = counts(store)
        assert at_kill.get("queued", 0) > 0, (
            "the worker finished before it could be killed"
        )
        # And a worker under the same name is started again
        second = subprocess.run([JINGXIN, "worker", "--once", "--linger", "25"], env=env,
                                capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert second.returncode == 0, second.stderr[-2000:]
        submits = Counter(
            e.fields.get("destination_addr")
            for e in threaded.sim.record.of("submit_sm")
        )
    # Then every message is in exactly one final state (one row per key by construction)
    final = counts(store)
    assert set(final) <= {"delivered", "expired"}, final
    assert sum(final.values()) == N
    # And duplicates towards the SMSC are no more than what was in flight, and all counted
    duplicates = sum(n - 1 for n in submits.values() if n > 1)
    with store.sessions() as s:
        unresolved = s.execute(select(func.sum(Message.unresolved))).scalar_one() or 0
    assert len(submits) == N
    assert duplicates <= unresolved <= 200  # max_in_flight
    print(
        f"\nkill -9 at {at_kill}: final {final}, duplicates {duplicates}, "
        f"unresolved (counted) {unresolved}"
    )
    store.dispose()

"""Receipts survive a kill -9 of the worker: acknowledged to the SMSC only once committed.

A worker process on PostgreSQL is killed while receipts it has received are still waiting
for the next flush. The simulator never got their deliver_sm_resp, so it delivers them
again when the restarted worker binds: every message ends ``delivered``, none is left
waiting for a receipt that was lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jingxin.data.store import open_store
from jingxin.data.store.models import Message, utc_now
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.smsc.behaviour import Behaviour

# kill -9 and restarts on a timeline: run alone, after the parallel part (./dev test).
pytestmark = pytest.mark.serial

N = 600
JINGXIN = str(Path(sys.executable).with_name("jingxin"))


def _counts(store) -> dict[str, int]:
    with store.sessions() as s:
        return dict(
            s.execute(select(Message.state, func.count()).group_by(Message.state)).all()
        )


@pytest.mark.postgres
def test_receipts_pending_at_a_kill_are_delivered_again(
    pg_url, tmp_path, threaded_simulator
) -> None:
    store = open_store(pg_url, upgrade=True)
    valid = utc_now() + timedelta(minutes=5)
    enqueue(store, entries=[
        OutboxEntry(tenant_id="default", msisdn=f"+86137{i:08d}", category="notification",
                    text=f"验证回执 {i}", idempotency_key=f"durable-{i}", expires_at=valid)
        for i in range(N)
    ])  # fmt: skip
    env = {
        **os.environ, "JINGXIN_STORE__URL": pg_url, "JINGXIN_CONFIG": os.devnull,
        "JINGXIN_DISPATCH__WORKER_NAME": "durable-worker", "JINGXIN_DISPATCH__RECEIPT_GRACE": "0",
        # One write-back a second: receipts wait in the worker's memory for most of it.
        "JINGXIN_DISPATCH__FLUSH_INTERVAL": "1.0",
    }  # fmt: skip
    # Given an SMSC whose receipts follow the submit response by 1.2 s: after the flush
    # that records the submit, before the one after it
    with threaded_simulator(Behaviour(receipt_delay=1.2)) as threaded:
        env["JINGXIN_CHANNELS"] = json.dumps(
            [{"name": "sim", "port": threaded.sim.smpp_port, "window": 50}]
        )
        worker = subprocess.Popen([JINGXIN, "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                threaded.sim.smpp.receipts_sent < 100
                or _counts(store).get("submitted", 0) < 100
            ):
                time.sleep(0.01)
            # When the worker is killed while receipts for recorded submits wait for the next flush
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.wait(10)
        at_kill = _counts(store)
        assert at_kill.get("submitted", 0) >= 100, (
            f"no recorded submit waited for its receipt: {at_kill}"
        )
        # And started again under the same name
        again = subprocess.run([JINGXIN, "worker", "--once", "--linger", "8"], env=env,
                               capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        resent = threaded.sim.smpp.receipts_resent
    # Then the receipts the killed worker held were delivered again, and every message is delivered
    assert resent > 0, f"no receipt was pending at the kill ({at_kill})"
    assert _counts(store) == {"delivered": N}
    print(
        f"\nkill -9 at {at_kill}: {resent} receipts delivered again, all {N} delivered"
    )
    store.dispose()

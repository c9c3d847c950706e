"""The send-time re-check's cost: claiming with and without it, in the same run.

The store is a temporary SQLite file unless ``JINGXIN_BENCH_STORE_URL`` names another
(e.g. an empty PostgreSQL database), as for the other dispatch benchmarks. Its effect on a
whole drain is measured by ``dispatch-drain`` / ``dispatch-drain-pg``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import timedelta
from typing import Any

from jingxin.bench import benchmark

CLAIM_ROWS = 100  # a worker's usual claim: its reserve plus a tenth of max_in_flight
ROUNDS = 3  # off, on, off, on, ...: the median of each


@benchmark("dispatch-claim-recheck", summary="claim N queued messages 100 at a time with and "
           "without the send-time re-check (1 % of numbers opted out since the decision); "
           "ms per claim and the overhead", default_scale=20_000)  # fmt: skip
def dispatch_claim_recheck(scale: int) -> dict[str, Any]:
    from jingxin.bench.dispatch import _store

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            _given(store, scale)
            off, on, cancelled = [], [], 0
            for _ in range(ROUNDS):
                off.append(_claim_all(store, recheck=False)[0])
                seconds, cancelled = _claim_all(store, recheck=True)
                on.append(seconds)
        finally:
            store.dispose()
    claims = -(-scale // CLAIM_ROWS)
    off_s, on_s = statistics.median(off), statistics.median(on)
    return {"dialect": store.engine.dialect.name, "messages": scale, "claims": claims,
            "ms_per_claim_without": round(off_s / claims * 1000, 3),
            "ms_per_claim_with": round(on_s / claims * 1000, 3),
            "overhead_pct": round((on_s / off_s - 1) * 100, 1), "cancelled": cancelled}  # fmt: skip


def _given(store, scale: int) -> None:
    from jingxin.bench.dispatch import _entries
    from jingxin.data.store.models import OptOut, utc_now
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.dispatch.outbox import enqueue

    decided = utc_now() - timedelta(hours=1)
    enqueue(store, entries=_entries(scale), now=decided)
    with store.transaction() as session:
        ensure_default_tenant(session)
        session.add_all(OptOut(msisdn=f"+86139{i:08d}", source="sms_reply",
                               recorded_at=decided + timedelta(minutes=5))
                        for i in range(0, scale, 100))  # fmt: skip


def _claim_all(store, *, recheck: bool) -> tuple[float, int]:
    """Seconds to claim every queued message; the outbox is queued again afterwards."""
    from jingxin.data.store.models import utc_now
    from jingxin.dispatch.claim import claim_batch

    now, cancelled = utc_now(), 0
    started = time.perf_counter()
    while True:
        batch = claim_batch(store, worker="bench", limit=CLAIM_ROWS, now=now, recheck=recheck)
        cancelled += len(batch.cancelled)
        if not batch.messages and not batch.cancelled:
            break
    seconds = time.perf_counter() - started
    _requeue(store)
    return seconds, cancelled


def _requeue(store) -> None:
    from sqlalchemy import delete, update

    from jingxin.data.store.models import DecisionRecord, Message

    with store.engine.begin() as conn:
        conn.execute(update(Message).values(state="queued", attempts=0, error_code=None,
                                            error_detail=None, finished_at=None, worker=None,
                                            submitting_at=None))  # fmt: skip
        conn.execute(delete(DecisionRecord))

"""``jingxin bench deliver-one``: the delivery entry's single-message path, one process.

N deliveries of an approved notification template, one after another (each decided and
enqueued in its own transaction, as an API request or an inbox reply is), to N numbers of
which some have contact state. Figures: p50/p99 latency per delivery and the sustained
msg/s. Goals: p99 <= 10 ms, >= 1,000 msg/s.

The store is a temporary SQLite file unless ``JINGXIN_BENCH_STORE_URL`` names another (an
empty PostgreSQL database, e.g. ``postgresql+psycopg://127.0.0.1/test``).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime

from jingxin.bench import Figures, benchmark

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside quiet hours


@benchmark("deliver-one", summary="N single messages through the delivery entry "
           "(decide, render, outbox, ledger, audit in one transaction each)",
           default_scale=20_000)  # fmt: skip
def deliver_one_bench(scale: int) -> Figures:
    from jingxin.bench.dispatch import _store
    from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_one

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            _template(store)
            context = DeliveryContext()
            outcomes: dict[str, int] = {}
            latencies = []
            for i in range(min(scale, 50) * -1, 0):  # warm the caches, not measured
                deliver_one(store, delivery=_delivery(i, Delivery), context=context, now=NOON)
            started = time.perf_counter()
            for i in range(scale):
                begun = time.perf_counter()
                got = deliver_one(store, delivery=_delivery(i, Delivery), context=context,
                                  now=NOON)  # fmt: skip
                latencies.append(time.perf_counter() - begun)
                outcomes[got.outcome] = outcomes.get(got.outcome, 0) + 1
            seconds = time.perf_counter() - started
            dialect = store.engine.dialect.name
        finally:
            store.dispose()
    latencies.sort()
    return {
        "dialect": dialect, "messages": scale, "seconds": round(seconds, 2),
        "msg_per_s": round(scale / seconds), "outcomes": outcomes,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "goal": "p99 <= 10 ms, >= 1,000 msg/s",
    }  # fmt: skip


def _delivery(i: int, make):
    # Every 10th request repeats the one before it: duplicates are part of the load.
    n = i - 1 if i > 0 and i % 10 == 0 else i
    return make(msisdn=f"139{abs(n):08d}", source="api", idempotency_key=f"bench:{n}",
                template="bench.bill", variables={"name": "王先生"})  # fmt: skip


def _template(store) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as session:
        ensure_default_tenant(session)
        doc = TemplateDocument(code="bench.bill", category="notification",
                               body="{{ name }}您好，您本月的账单已出，详询10086。",
                               variables={"name": "str"})  # fmt: skip
        catalog.seed_library(session, documents=[doc], approve_as="bench", reviewer=None)

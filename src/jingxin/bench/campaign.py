"""``jingxin bench campaign``: a campaign of N recipients from start to all rows in the outbox.

The run is what ``jingxin campaign run`` does: an audience file (Parquet, a msisdn column
and three template variables with few distinct values, as campaign audiences have), an
approved catalogue template, and a contact state that makes policy work: explicit
consents, opt-outs, the blacklist, numbers marked invalid, and a ledger of earlier
contacts so the daily cap rejects a few percent. Figures: rows/s, accepted and rejected
by reason, and the seconds per stage (read, render, state, decide, build, enqueue, ledger).
The campaign has a marketing campaign's default hold-out (``[analytics] holdout``): every
number is assigned and recorded, the held-out ones are never sent (``held_out``).

The store is a temporary SQLite file unless ``JINGXIN_BENCH_STORE_URL`` names another
(an empty PostgreSQL database: the benchmark writes state rows and refuses a used outbox).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jingxin.bench import Figures, benchmark

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside quiet hours
BODY = "{{ name }}您好，您的{{ plan }}本月还有{{ points }}积分可兑换流量包，详询10086。"
NAMES = ("王先生", "李女士", "张先生", "刘女士", "陈先生", "杨女士", "赵先生", "黄女士")
PLANS = ("畅享套餐", "5G智享套餐", "全球通套餐", "动感地带")
# Share of the audience with each kind of state (every n-th number).
EVERY = {"consent": 20, "opt_out": 100, "blacklist": 200, "invalid": 200, "contacted": 33}


def _msisdn(i: int) -> str:
    return f"+86139{i:08d}"


def _audience(path: Path, n: int, *, personal: bool = False) -> None:
    """N national numbers with the template's variables; every 1000th number is repeated
    (a duplicate) and every 2000th is malformed (an invalid number). ``personal`` gives
    every row its own points balance, so no two rows render the same text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    numbers = [f"139{i:08d}" for i in range(n)]
    for i in range(0, n, 1000):
        numbers[i] = f"139{(i + 1) % n:08d}"
    for i in range(500, n, 2000):
        numbers[i] = "12345"
    table = pa.table({
        "msisdn": numbers,
        "name": [NAMES[i % len(NAMES)] for i in range(n)],
        "plan": [PLANS[i % len(PLANS)] for i in range(n)],
        "points": list(range(n)) if personal else [(i % 40) * 50 for i in range(n)],
    })  # fmt: skip
    pq.write_table(table, path)


def _template(store) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as session:
        ensure_default_tenant(session)
        variables = {"name": "str", "plan": "str", "points": "int"}
        doc = TemplateDocument(code="bench.points", category="marketing", body=BODY,
                               variables=variables)  # fmt: skip
        catalog.seed_library(session, documents=[doc], approve_as="bench", reviewer=None)


def _state(store, n: int) -> dict[str, int]:
    """Consents, opt-outs, blacklist entries, invalid numbers and today's earlier contacts
    for shares of the audience, inserted in bulk; returns how many of each."""
    from sqlalchemy import insert

    from jingxin.data.store.models import (
        DEFAULT_TENANT_ID,
        BlacklistEntry,
        Consent,
        LedgerEntry,
        OptOut,
        SubscriberState,
    )

    before = NOON - timedelta(days=3)
    tenant = DEFAULT_TENANT_ID
    rows = {
        Consent: [{"tenant_id": tenant, "msisdn": _msisdn(i), "category": "marketing",
                   "channel": "sms", "wording": "同意接收优惠信息", "given_at": before}
                  for i in range(7, n, EVERY["consent"])],
        OptOut: [{"msisdn": _msisdn(i), "source": "sms_reply", "recorded_at": before}
                 for i in range(3, n, EVERY["opt_out"])],
        BlacklistEntry: [{"msisdn": _msisdn(i), "added_by": "bench", "added_at": before}
                         for i in range(11, n, EVERY["blacklist"])],
        SubscriberState: [{"msisdn": _msisdn(i), "invalid_since": before, "updated_at": before}
                          for i in range(13, n, EVERY["invalid"])],
        LedgerEntry: [{"tenant_id": tenant, "msisdn": _msisdn(i), "category": "marketing",
                       "campaign_id": None, "contact_at": NOON - timedelta(hours=2),
                       "local_date": NOON.date(), "idempotency_key": f"earlier:{i}"}
                      for i in range(5, n, EVERY["contacted"])],
    }  # fmt: skip
    with store.transaction() as session:
        for model, values in rows.items():
            for start in range(0, len(values), 20_000):
                session.execute(insert(model), values[start : start + 20_000])
    return {model.__tablename__: len(values) for model, values in rows.items()}


@benchmark("campaign", summary="a campaign of N recipients (approved template, Parquet "
           "audience, contact state) from start to all rows in the outbox",
           default_scale=1_000_000)  # fmt: skip
def campaign(scale: int) -> Figures:
    return _campaign(scale, personal=False)


@benchmark("campaign-personal", summary="the campaign benchmark with a text of its own for "
           "every recipient (no two rows render alike)", default_scale=1_000_000)  # fmt: skip
def campaign_personal(scale: int) -> Figures:
    return _campaign(scale, personal=True)


def _campaign(scale: int, *, personal: bool) -> Figures:
    from sqlalchemy import func, select

    from jingxin.bench.dispatch import _store
    from jingxin.data.store.models import Message
    from jingxin.dispatch.campaign import CampaignSpec, run_campaign

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(tmp)
        try:
            with store.sessions() as session:
                if session.scalar(select(func.count()).select_from(Message)):
                    raise SystemExit("campaign needs an empty store (JINGXIN_BENCH_STORE_URL)")
            audience = Path(tmp) / "audience.parquet"
            _audience(audience, scale, personal=personal)
            _template(store)
            state = _state(store, scale)
            spec = CampaignSpec(name="bench", category="marketing", tariff=0.05,
                                template={"code": "bench.points"},
                                audience={"path": audience})  # fmt: skip
            started = time.perf_counter()
            summary = run_campaign(store, spec=spec, now=NOON)
            seconds = time.perf_counter() - started
            with store.sessions() as session:
                queued = session.scalar(select(func.count()).select_from(Message))
        finally:
            store.dispose()
    figures = _figures(store.engine.dialect.name, scale, seconds, summary, queued, state)
    return {**figures, "texts": "one per recipient" if personal else "few distinct"}


def _figures(dialect: str, scale: int, seconds: float, summary: Any, queued: int,
             state: dict[str, int]) -> Figures:  # fmt: skip
    return {
        "dialect": dialect, "rows": scale, "seconds": round(seconds, 2),
        "rows_per_s": round(scale / seconds), "queued": queued,
        "accepted": summary.accepted + summary.deferred, "deferred": summary.deferred,
        "held_out": getattr(summary, "held_out", 0),  # the [analytics] hold-out, never sent
        "rejected": dict(sorted(summary.rejected.items())),
        "stages_s": {k: round(v, 2) for k, v in sorted(summary.stages.items())},
        "state_rows": state, "goal": "1,000,000 rows in <= 60 s",
    }  # fmt: skip

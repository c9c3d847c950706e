"""The campaign ``jingxin bench report`` reports on: N recipients through the real road,
then what subscribers did, at realistic rates (a simulation, and it says so).

- the campaign: ``dispatch.campaign.run_campaign`` with a spec of two variants (A and B,
  approved catalogue templates carrying ``{{ link }}``) and a 5 % hold-out, so the
  assignments are recorded by ``analytics.assign`` and the treated rows enter the outbox
  through the delivery entry, each with its short link;
- receipts: as the other benchmarks and the tests fake them, bulk UPDATEs of ``messages``
  (sent over four hours from noon; 95 % delivered a minute later, the rest failed);
- clicks: 4 % of the delivered, through ``analytics.clicks.record_clicks`` (a tenth of
  them clicked twice, and a bot's preview before some of them);
- replies: 1 % of the delivered, MO rows as the inbox stores them (``mo_messages`` and an
  ``mo_outcomes`` row attributed to the message); a fifth of them are the unsubscribe
  handler's (opted out);
- orders: ``boss_orders`` rows as the tests write them, placed by 2 % of the treated and
  1.2 % of the held-out within five days (the hold-out's attributed to its assignment);
- the warehouse: a DuckDB file with a ``subscribers`` row (district, plan, tenure,
  payment) for every recipient, so the breakdowns have something to join.

Everything is drawn from one seed: the same N gives the same world.
"""

from __future__ import annotations

import datetime as dt
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside quiet hours
REPORT_AT = NOON + timedelta(days=10)  # every receipt, click and order long settled
SEND_HOURS = 4  # the messages go out over this many hours from noon
HOLDOUT = 0.05
RATES = {"delivered": 0.95, "clicked": 0.04, "replied": 0.01, "unsubscribe": 0.2,
         "ordered": 0.02, "ordered_holdout": 0.012}  # fmt: skip
BODIES = {"bench.report.a": "{{ name }}您好，5G流量包本月五折，点此办理 {{ link }}",
          "bench.report.b": "{{ name }}您好，加10元得30GB流量，详情 {{ link }}"}  # fmt: skip
LINK = "https://shop.example.cn/5g?utm_source=sms"
NAMES = ("王先生", "李女士", "张先生", "刘女士", "陈先生", "杨女士", "赵先生", "黄女士")
DISTRICTS = ("浦东新区", "闵行区", "徐汇区", "宝山区", "嘉定区", "松江区", "普陀区", "杨浦区",
             "长宁区", "静安区", "黄浦区", "虹口区", "青浦区", "奉贤区", "金山区", "崇明区")
PLANS = tuple(f"P5G-{fee:03d}" for fee in (29, 39, 58, 88, 128, 158, 198, 238, 288, 388))
PRODUCTS = (("DP10-30G", 1000), ("DP20-60G", 2000), ("VP5-100M", 500), ("DP30-100G", 3000))
CHUNK = 20_000


def msisdn(i: int) -> str:
    return f"+86139{i:08d}"


def build(store: Any, folder: Path, *, recipients: int, seed: int = 7) -> dict[str, Any]:
    """Make the world in ``store`` and ``folder/warehouse.duckdb``; its figures: the
    campaign id, the rows of each kind and the seconds each step took."""
    rng = np.random.default_rng(seed)
    steps: dict[str, float] = {}

    def step(name: str, started: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - started, 2)
        return now

    started = time.perf_counter()
    summary = run_campaign_of(store, folder, recipients)
    started = step("campaign", started)
    messages = receipts(store, summary.campaign_id, rng)
    started = step("receipts", started)
    counts = {"recipients": recipients, "held_out": summary.held_out,
              "queued": summary.accepted + summary.deferred,
              "rejected": sum(summary.rejected.values())}  # fmt: skip
    counts["clicks"] = clicks(store, messages, rng)
    started = step("clicks", started)
    counts["replies"], counts["unsubscribes"] = replies(store, summary.campaign_id, messages,
                                                        rng)  # fmt: skip
    started = step("replies", started)
    counts["orders"] = orders(store, summary.campaign_id, messages, rng)
    started = step("orders", started)
    warehouse(folder / "warehouse.duckdb", recipients, rng)
    step("warehouse", started)
    return {"campaign_id": summary.campaign_id, "rows": counts, "setup_s": steps}


# ----------------------------------------------------------------------------- campaign


def run_campaign_of(store: Any, folder: Path, recipients: int) -> Any:
    """The campaign through ``run_campaign``: two variants, a 5 % hold-out, a link."""
    import pyarrow.parquet as pq

    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.dispatch.campaign import CampaignSpec, run_campaign

    with store.transaction() as session:
        ensure_default_tenant(session)
        docs = [TemplateDocument(code=code, category="marketing", body=body,
                                 variables={"name": "str", "link": "str"})
                for code, body in BODIES.items()]  # fmt: skip
        catalog.seed_library(session, documents=docs, approve_as="bench", reviewer=None)
    audience = folder / "audience.parquet"
    pq.write_table(pa.table({
        "msisdn": [f"139{i:08d}" for i in range(recipients)],
        "name": [NAMES[i % len(NAMES)] for i in range(recipients)]}), audience)
    spec = CampaignSpec.model_validate({
        "name": "bench-report", "category": "marketing", "tariff": 0.05, "link": LINK,
        "audience": {"path": str(audience)},
        "experiment": {"holdout": HOLDOUT, "variants": [
            {"name": arm, "template": {"code": code}}
            for arm, code in zip(("A", "B"), BODIES, strict=True)]},
    })  # fmt: skip
    return run_campaign(store, spec=spec, now=NOON)


def receipts(store: Any, campaign_id: int, rng: np.random.Generator) -> pa.Table:
    """Submit and receipt every queued message in bulk UPDATEs (as the tests fake the
    worker): sent in ``SEND_HOURS`` hourly waves, 95 % delivered a minute later, the rest
    undeliverable. Returns the messages (id, msisdn, arm, token, sent, delivered)."""
    from sqlalchemy import select, update

    from jingxin.data.store.models import Message

    m = Message
    with store.transaction() as session:
        for hour in range(SEND_HOURS):
            sent = NOON + timedelta(hours=hour)
            session.execute(update(m).where(m.campaign_id == campaign_id,
                                            m.id % SEND_HOURS == hour)
                            .values(state="delivered", submitted_at=sent,
                                    finished_at=sent + timedelta(minutes=1)))  # fmt: skip
        rows = session.execute(select(m.id, m.msisdn, m.arm, m.link_token)
                               .where(m.campaign_id == campaign_id).order_by(m.id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        failed = ids[rng.random(len(ids)) >= RATES["delivered"]]
        for first in range(0, len(failed), CHUNK):
            session.execute(update(m).where(m.id.in_(failed[first:first + CHUNK].tolist()))
                            .values(state="undeliverable", error_code="EC13"))  # fmt: skip
    delivered = ~np.isin(ids, failed)
    return pa.table({
        "id": ids, "msisdn": [r[1] for r in rows], "arm": [r[2] for r in rows],
        "token": [r[3] for r in rows],
        "sent": [NOON + timedelta(hours=int(i % SEND_HOURS)) for i in ids],
        "delivered": delivered,
    })  # fmt: skip


# ----------------------------------------------------------------------------- reactions


def _some(rng: np.random.Generator, messages: pa.Table, rate: float) -> list[dict[str, Any]]:
    """A ``rate`` share of the delivered messages, as dicts."""
    delivered = messages.filter(messages["delivered"])
    picked = np.flatnonzero(rng.random(delivered.num_rows) < rate)
    return delivered.take(pa.array(picked, pa.int64())).to_pylist()


def clicks(store: Any, messages: pa.Table, rng: np.random.Generator) -> int:
    """4 % of the delivered click (through ``record_clicks``, as the redirect does)."""
    from jingxin.analytics.clicks import ClickRow, record_clicks

    browser = "Mozilla/5.0 (Linux; Android 14) Chrome/124.0 Mobile"
    rows: list[ClickRow] = []
    for row in _some(rng, messages, RATES["clicked"]):
        at = row["sent"] + timedelta(minutes=float(rng.exponential(240)) + 2)
        if rng.random() < 0.2:  # a chat app's link preview, before the person
            rows.append(ClickRow(row["token"], row["id"], at - timedelta(minutes=1), True,
                                 agent="TelegramBot (like TwitterBot)"))  # fmt: skip
        rows.append(ClickRow(row["token"], row["id"], at, False, agent=browser))
        if rng.random() < 0.1:
            rows.append(ClickRow(row["token"], row["id"], at + timedelta(hours=1), False,
                                 agent=browser))  # fmt: skip
    added = 0
    for first in range(0, len(rows), CHUNK):
        added += record_clicks(store, rows[first:first + CHUNK])
    return added


def replies(store: Any, campaign_id: int, messages: pa.Table,
            rng: np.random.Generator) -> tuple[int, int]:  # fmt: skip
    """1 % of the delivered reply: the MO and its outcome as the inbox stores them,
    attributed to the message; a fifth are unsubscribes (``TD``)."""
    from sqlalchemy import insert

    from jingxin.data.store.models import DEFAULT_TENANT_ID, MoMessage, MoOutcome

    picked = _some(rng, messages, RATES["replied"])
    unsubscribe = rng.random(len(picked)) < RATES["unsubscribe"]
    with store.transaction() as session:
        for first in range(0, len(picked), CHUNK):
            part = picked[first:first + CHUNK]
            mos = [{"channel": "sim", "msisdn": r["msisdn"], "service_number": "10690000",
                    "text": "TD" if unsubscribe[first + i] else "好的，怎么办理？", "coding": 8,
                    "parts": 1, "parts_expected": 1, "complete": True, "undecodable": False,
                    "received_at": r["sent"] + timedelta(minutes=5 + 60 * (i % 24)),
                    "dedup_key": f"bench-report:{r['id']}"}
                   for i, r in enumerate(part)]  # fmt: skip
            ids = session.scalars(insert(MoMessage).returning(
                MoMessage.id, sort_by_parameter_order=True), mos).all()
            session.execute(insert(MoOutcome), [
                {"mo_id": mo_id, "handler": "unsubscribe" if unsubscribe[first + i] else "keyword",
                 "outcome": "handled", "message_id": r["id"], "tenant_id": DEFAULT_TENANT_ID,
                 "campaign_id": campaign_id, "source": "campaign",
                 "source_id": str(campaign_id), "arm": r["arm"],
                 "handled_at": mos[i]["received_at"]}
                for i, (mo_id, r) in enumerate(zip(ids, part, strict=True))])  # fmt: skip
    return len(picked), int(unsubscribe.sum())


def orders(store: Any, campaign_id: int, messages: pa.Table, rng: np.random.Generator) -> int:
    """Orders of 2 % of the treated (after their message) and 1.2 % of the held-out (after
    their assignment), within five days; ``boss_orders`` rows as the tests write them."""
    from sqlalchemy import insert, select

    from jingxin.data.store.models import BossOrder, ExperimentAssignment

    a = ExperimentAssignment
    with store.sessions() as session:
        held = session.scalars(select(a.msisdn).where(
            a.experiment == f"campaign:{campaign_id}", a.holdout.is_(True))).all()
    sent = dict(zip(messages["msisdn"].to_pylist(), messages["sent"].to_pylist(), strict=True))
    treated = list(sent)
    buyers = [(n, sent[n]) for n in np.array(treated)[rng.random(len(treated))
                                                        < RATES["ordered"]]]  # fmt: skip
    buyers += [(n, NOON) for n in np.array(held, dtype=object)[
        rng.random(len(held)) < RATES["ordered_holdout"]]]  # fmt: skip
    rows = []
    for i, (number, after) in enumerate(buyers):
        product, fee = PRODUCTS[int(rng.integers(len(PRODUCTS)))]
        rows.append({"boss_ref": f"bench-{i:08d}", "request_key": f"bench-report-{i:08d}",
                     "msisdn": str(number), "product_id": product, "channel": "app",
                     "fee_fen": fee, "state": "placed",
                     "at": after + timedelta(hours=float(rng.uniform(0.5, 120)))})  # fmt: skip
    with store.transaction() as session:
        for first in range(0, len(rows), CHUNK):
            session.execute(insert(BossOrder), rows[first:first + CHUNK])
    return len(rows)


# ----------------------------------------------------------------------------- warehouse


def warehouse(path: Path, recipients: int, rng: np.random.Generator) -> None:
    """A DuckDB warehouse with a ``subscribers`` row for every recipient (the columns of
    the declared schema; district, plan, payment and entry date drawn, the rest plain)."""
    import pyarrow.compute as pc

    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.data.warehouse.schema import TABLES

    n = recipients
    schema = TABLES["subscribers"].schema
    entry = (dt.date(2026, 11, 1) - dt.date(1970, 1, 1)).days - rng.integers(0, 15 * 365, n)
    nulls = {name: pa.nulls(n, schema.field(name).type)
             for name in ("gender", "birthday", "contract_end", "handset_model",
                          "suspended_since")}  # fmt: skip
    data = {
        "subscriber_id": pa.array(np.arange(1, n + 1)),
        "msisdn": pa.array([msisdn(i) for i in range(n)]),
        "carrier": pa.array(["china_mobile"] * n),
        "plan_id": pc.take(pa.array(PLANS), pa.array(rng.integers(0, len(PLANS), n))),
        "payment": pc.take(pa.array(["prepaid", "postpaid"]),
                           pa.array((rng.random(n) < 0.6).astype(np.int64))),
        "status": pa.array(["active"] * n),
        "entry_date": pa.array(entry.astype(np.int32)).cast(pa.date32()),
        "star_level": pa.array(rng.integers(0, 8, n).astype(np.int8)),
        "region": pc.take(pa.array(DISTRICTS), pa.array(rng.integers(0, len(DISTRICTS), n))),
        "handset_generation": pa.array(rng.choice([4, 5], n).astype(np.int8)),
        "app_user": pa.array(rng.random(n) < 0.7),
        **nulls,
    }  # fmt: skip
    table = pa.table([data[f.name].cast(f.type) for f in schema], schema=schema)
    wh = open_duckdb(path)
    try:
        wh.con.create_table("subscribers", table, overwrite=True)
    finally:
        wh.con.disconnect()

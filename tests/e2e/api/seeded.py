"""One of everything, of the operator: the objects the schemathesis run and the isolation
sweep aim at (an approved template, a draft and a running campaign, a fence, a message,
an MO of its hall, a work order, a callback endpoint), on a tiny warehouse (subscribers
and cells) so the routes that read one answer.

Everything the operator owns carries :data:`MARKER` in a text it shows, so a response
to another tenant can be searched for it.

    wh = build_warehouse(tmp / "wh.duckdb")
    made, client = make_api(url, home=tmp, warehouse=WarehouseSettings(path=str(wh)))
    with client:
        objects = seed(made, home=tmp)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from jingxin.content.catalog import add_template, approve_template, submit_template
from jingxin.content.library import TemplateDocument
from jingxin.data.store.models import HallInteraction, MoMessage, MoOutcome
from jingxin.data.store.models.journeys import WorkOrder, WorkOrderEvent
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES

MARKER = "opsecret"
OWNER = "operator"
MSISDN = "+8613900000007"  # the number the operator's MO comes from
AUDIENCE = 12
TEMPLATE = TemplateDocument(code=f"{MARKER}.bill", category="notification",
                            body=f"{{{{ name }}}}，{MARKER}账单{{{{ amount }}}}元。",
                            variables={"name": "str", "amount": "float"})  # fmt: skip
CELLS = [  # id, lat, lon, district, kind
    ("P1", 31.1443, 121.8083, "浦东新区", "airport"),
    ("P2", 31.1452, 121.8090, "浦东新区", "airport"),
    ("R1", 31.1946, 121.3204, "闵行区", "rail"),
]
FENCE = {"code": f"{MARKER}-pvg", "name": f"{MARKER} 浦东机场", "scenario": "airport_departure",
         "cells": ["P1", "P2"], "hours": "06:00-23:00", "dwell": "10m",
         "template": TEMPLATE.code, "variables": {"name": "旅客", "amount": 25}}  # fmt: skip


def number(i: int) -> str:
    return f"+86139{i:08d}"


def campaign_spec(name: str) -> dict:
    return {"name": f"{MARKER} {name}", "category": "notification",
            "template": {"code": TEMPLATE.code}, "audience": {"path": "bills.csv"},
            "experiment": {"holdout": "none"}}  # fmt: skip


def build_warehouse(path: Path) -> Path:
    """A DuckDB warehouse: 30 subscribers and the cells above."""
    n = 30
    people = {"subscriber_id": list(range(1, n + 1)), "msisdn": [number(i) for i in range(n)],
              "carrier": ["china_mobile"] * n, "plan_id": ["P1"] * n,
              "payment": ["prepaid"] * n, "status": ["active"] * n, "gender": [None] * n,
              "birthday": [None] * n, "entry_date": [dt.date(2020, 1, 1)] * n,
              "contract_end": [None] * n, "star_level": [i % 6 for i in range(n)],
              "region": ["浦东新区"] * n, "handset_model": [None] * n,
              "handset_generation": [4] * n, "app_user": [True] * n,
              "suspended_since": [None] * n}  # fmt: skip
    wh = open_duckdb(path)
    for name, data in (("subscribers", people),
                       ("cells", dict(zip([f.name for f in TABLES["cells"].schema],
                                          map(list, zip(*CELLS, strict=True)), strict=True)))):
        schema = TABLES[name].schema
        wh.con.create_table(name, pa.table({f.name: pa.array(data[f.name], f.type)
                                            for f in schema}, schema=schema))  # fmt: skip
    wh.close()
    return path


@dataclass(frozen=True)
class Objects:
    """The ids of what :func:`seed` made, all the operator's."""

    template: int
    draft_campaign: int  # never scheduled
    campaign: int  # scheduled: it has messages
    fence: int
    message: int
    mo: int
    workorder: int
    user: int  # the operator's admin user
    key: int  # the operator's analyst key (the admin's stays usable)
    journey: str = "birthday"  # a trigger of the daily scan, which sends as the operator
    service_number: str = "10086"  # the operator's hall
    tenant: str = OWNER


def seed(api, *, home: Path) -> Objects:
    """Make the operator's objects in ``api`` (whose home is ``home``); the app's lifespan
    must be running."""
    from jingxin.data.store.models import ApiKey, User

    folder = home / "var" / "audiences" / OWNER
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{number(i)},王{i},{10 + i}.5\n" for i in range(AUDIENCE))
    (folder / "bills.csv").write_text("msisdn,name,amount\n" + rows, encoding="utf-8")
    with api.store.transaction() as session:
        template = add_template(session, document=TEMPLATE, tenant_id=OWNER)
        submit_template(session, template_id=template.id)
        approve_template(session, template_id=template.id, reviewer="seed")
        template_id = template.id
        user_id = session.query(User).filter_by(username=api.username("admin")).one().id
        prefix = api.keys[(OWNER, "analyst")].split("_")[1]
        key_id = session.query(ApiKey).filter_by(prefix=prefix).one().id
    admin = api.as_key("admin", tenant=OWNER)
    made = {}
    for name in ("draft", "running"):
        r = admin.post("/api/v1/campaigns", json={"spec": campaign_spec(name)})
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]
    r = admin.post(f"/api/v1/campaigns/{made['running']}/schedule")
    assert r.status_code == 200, r.text
    r = admin.post("/api/v1/fences", json=FENCE)
    assert r.status_code == 201, r.text
    fence = r.json()["id"]
    r = admin.post("/api/v1/send", json={
        "msisdn": number(1), "category": "notification", "template": TEMPLATE.code,
        "variables": {"name": "王", "amount": 1.5}, "idempotency_key": f"{MARKER}-1"})  # fmt: skip
    assert r.status_code == 202, r.text
    message = r.json()["message_id"]
    r = admin.put("/api/v1/callbacks", json={"url": f"https://{MARKER}.example.com/hook"})
    assert r.status_code in (200, 201), r.text
    mo, order = _rows(api)
    return Objects(template=template_id, draft_campaign=made["draft"],
                   campaign=made["running"], fence=fence, message=message, mo=mo,
                   workorder=order, user=user_id, key=key_id)  # fmt: skip


def _rows(api) -> tuple[int, int]:
    """What no route makes: an MO the operator's hall answered, and a work order."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    with api.store.transaction() as session:
        mo = MoMessage(channel="sim-smpp", msisdn=MSISDN, service_number="10086",
                       text=f"{MARKER} YE", coding=8, parts=1, parts_expected=1, complete=True,
                       undecodable=False, received_at=at, dedup_key=f"{MARKER}-mo")  # fmt: skip
        order = WorkOrder(subscriber_id=7, msisdn=MSISDN, tenant_id=OWNER, episode="2026-03-01",
                          branch=f"{MARKER}分公司", propensity=0.5, state="created",
                          barred_since=dt.date(2026, 3, 1),
                          extracted_on=dt.date(2026, 3, 10))  # fmt: skip
        session.add_all([mo, order])
        session.flush()
        session.add_all([
            MoOutcome(mo_id=mo.id, handler="hall", outcome="handled", detail="hall: answered",
                      tenant_id=OWNER, handled_at=at),
            HallInteraction(mo_id=mo.id, msisdn=MSISDN, service_number="10086",
                            tenant_id=OWNER, command="balance", kind="query",
                            outcome="answered", reply=f"{MARKER} 余额12元。", at=at),
            WorkOrderEvent(order_id=order.id, state="created", by="system",
                           note=f"{MARKER}: arpu_3m=12 (+0.310)"),
        ])  # fmt: skip
        return mo.id, order.id

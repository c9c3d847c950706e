"""The demo's last step: proof. A data-pack offer goes to the composite model's audience
and, as a random blast of the same size, to anyone; both keep a hold-out; the simulated
subscribers answer according to relevance; the event log, the arms with their intervals
and the uplift against each hold-out say which campaign worked; the report is written.

It runs inside the simulator's environment (the worker sends through it). Both campaigns
are decided as of yesterday noon, so they are due whatever the hour of the demo.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jingxin.demo.runner import Workspace
from jingxin.demo.twoway import _noon

LINK = "https://shop.10086.cn/5g/data-pack"
SEED = 7

TARGETED = """\
name: data-pack-targeted
tenant: operator
category: marketing
audience: {{path: targeted.parquet}}
link: {link}
experiment:
  holdout: 0.1                   # sent nothing, chosen before policy: the comparison is fair
  variants:
    - name: A
      template:
        body: "5G流量包限时优惠：每月20元得10GB，点击 {{{{ link }}}} 办理。"
    - name: B
      template:
        body: "您的流量常用尽？10GB流量包每月仅20元，点击 {{{{ link }}}} 立即办理。"
validity_hours: 48                # decided as of yesterday noon: still valid now
tariff: 0.05
"""

BLAST = """\
name: data-pack-blast
tenant: operator
category: marketing
audience: {{path: blast.parquet}}
link: {link}
experiment: {{holdout: 0.1}}
template:
  body: "5G流量包限时优惠：每月20元得10GB，点击 {{{{ link }}}} 办理。"
validity_hours: 48                # decided as of yesterday noon: still valid now
tariff: 0.05
"""


def _audiences(ws: Workspace) -> int:
    """The composite model's audience (exported in the audience step) and a random blast
    of the same size from every active subscriber; returns the size."""
    import duckdb

    targeted = pq.read_table(ws.path("audience.parquet"), columns=["msisdn"])
    n = targeted.num_rows
    con = duckdb.connect(str(ws.warehouse), read_only=True)
    try:
        blast = con.sql(f"""SELECT msisdn FROM subscribers WHERE status = 'active'
                            ORDER BY hash(msisdn || '{SEED}') LIMIT {n}""").to_arrow_table()
    finally:
        con.close()
    pq.write_table(pa.table({"msisdn": targeted.column("msisdn")}), ws.path("targeted.parquet"))
    pq.write_table(blast, ws.path("blast.parquet"))
    return n


def _campaign_ids(ws: Workspace) -> dict[str, int]:
    from sqlalchemy import select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import Campaign

    store = open_store(ws.store_url)
    try:
        with store.transaction() as session:
            rows = session.execute(select(Campaign.name, Campaign.id)).all()
    finally:
        store.dispose()
    return {name: id_ for name, id_ in rows}


def analytics(ws: Workspace) -> Path:
    """The step; returns the report's path."""
    ws.heading("Proof: what the campaigns caused",
               "A data-pack offer with a tracked short link goes to the composite model's "
               "audience (two variants) and, as a random blast of the same size, to anyone; "
               "each keeps a 10% hold-out that is sent nothing. Simulated subscribers (a "
               "simulation: relevance drives who clicks, replies and orders) answer; the event "
               "log ties every click, reply and order to its campaign and arm; the arms are "
               "compared with intervals and against the hold-out; the report is written.")
    size = _audiences(ws)
    ws.console.print(f"[dim]{size:,} subscribers in the targeted audience, "
                     f"{size:,} drawn at random for the blast[/]")
    ws.path("targeted.yaml").write_text(TARGETED.format(link=LINK), encoding="utf-8")
    ws.path("blast.yaml").write_text(BLAST.format(link=LINK), encoding="utf-8")
    for spec in ("targeted.yaml", "blast.yaml"):
        ws.run("campaign", "run", str(ws.path(spec)), "--at", _noon(-1))
    ws.run("worker", "--once")
    ids = _campaign_ids(ws)
    targeted, blast = ids["data-pack-targeted"], ids["data-pack-blast"]
    for campaign in (targeted, blast):
        ws.run("simulate", "responses", "--campaign", str(campaign), "--seed", str(SEED))
    ws.run("events", "collect")
    ws.run("events", "list", "--campaign", str(targeted), "--kind", "ordered", "--limit", "5")
    for campaign in (targeted, blast):
        ws.run("experiment", "results", "campaign", str(campaign), "--metric", "ordered")
    report = ws.path("reports") / f"campaign-{targeted}.html"
    ws.run("report", "campaign", str(targeted), "--out", str(report),
           "--warehouse", str(ws.warehouse))
    ws.run("report", "campaign", str(blast), "--out",
           str(ws.path("reports") / f"campaign-{blast}.xlsx"), "--warehouse", str(ws.warehouse))
    return report

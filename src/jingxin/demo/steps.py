"""The demo's steps, in the order a newcomer should meet the platform."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from jingxin.demo.analytics import analytics
from jingxin.demo.api import ADMIN, api
from jingxin.demo.geofence import geofence
from jingxin.demo.hall import hall
from jingxin.demo.journeys import journeys
from jingxin.demo.runner import Workspace, demo_environment, simulator_process
from jingxin.demo.twoway import twoway

AS_OF = "2026-10-01"
# A Thursday evening in October, Beijing time: quiet hours start at 21:00.
DECIDE_AT = "2026-10-08T20:50:00+08:00"


def _synthesise(ws: Workspace, subscribers: int, seed: int) -> None:
    ws.heading("Synthesise an operator",
               f"{subscribers:,} subscribers with plans, six months of usage, cells and a week "
               "of location events, contacts, complaints, holdings, offers and churn labels.")
    ws.run("synth", "--subscribers", str(subscribers), "--seed", str(seed), "--as-of", AS_OF,
           "--location-subscribers", str(min(subscribers, 20_000)),
           "--out", str(ws.path("synth")), "--force", "--quiet")


def _import(ws: Workspace) -> None:
    ws.heading("Import it into the warehouse",
               "Every row is validated against the schema; numbers become E.164 with their "
               "carrier; bad rows would go to a rejects file with line and reason.")
    ws.run("import-dir", str(ws.path("synth")), "--replace", "--rejects", str(ws.path("rejects")))
    ws.run("summary", "--as-of", AS_OF)


COMPOSITE = """\
name: city-centre-data-lovers
# The source documents' composite model: resident cell in the area + product preference
# + price sensitivity under a threshold + channel preference - complaint-sensitive users.
composite:
  area: {districts: [浦东新区, 徐汇区, 静安区, 黄浦区]}
  preference: data_heavy
  max_price_sensitivity: 0.5
  channel: any
"""


def _audience(ws: Workspace) -> None:
    ws.heading("Audience: features, the composite model, plan fit, churn propensity",
               "Resident cells from location events, price sensitivity, channel preference, "
               "complaint sensitivity; then the precise few instead of everyone.")
    ws.run("audience", "features", "--as-of", AS_OF)
    ws.path("composite.yaml").write_text(COMPOSITE, encoding="utf-8")
    ws.run("audience", "count", str(ws.path("composite.yaml")))
    ws.run("audience", "preview", str(ws.path("composite.yaml")))
    ws.run("audience", "planfit", "--as-of", AS_OF, "--report", "--show", "3", "--top", "8")
    ws.run("audience", "train-churn")
    ws.run("audience", "export", str(ws.path("composite.yaml")),
           "--out", str(ws.path("audience.parquet")))


def _content(ws: Workspace) -> None:
    ws.heading("Templates and content review",
               "The starter library (care and industry templates) is loaded, reviewed and "
               "approved; a renewal SMS is previewed with its parts; texts are screened.")
    ws.run("db", "upgrade")
    ws.run("template", "seed-library", "--approve-as", "demo-reviewer")
    ws.run("template", "list")
    ws.run("review", "【中国移动】尊敬的客户，您的5G套餐本月流量已用90%，回复JY20办理20元10GB流量包。回T退订",
           "--category", "marketing")
    ws.run("review", "【中国移动】低息贷*款秒批，加微信领取，详见 http://bit.ly/x9 回T退订",
           "--category", "marketing", expect=1)


def _policy(ws: Workspace) -> None:
    import pyarrow.parquet as pq

    from jingxin.demo.audience import campaign_candidates

    ws.heading("Policy: who may get a marketing SMS, and when",
               "Consent, opt-outs, complaint sensitivity, quiet hours in local time, caps and "
               "arbitration, decided in one vectorised batch and kept for audit.")
    table = campaign_candidates(ws, limit=20_000)
    pq.write_table(table, ws.path("candidates.parquet"))
    first, second, third = (table.column("msisdn")[i].as_py() for i in range(3))
    ws.run("optout", "add", "--msisdn", first, "--source", "sms_reply", "--at", "2026-10-02T09:00:00+08:00")
    ws.run("subscriber", "set", "--msisdn", second, "--complaint-sensitive")
    ws.run("subscriber", "set", "--msisdn", third, "--roaming", "JP")
    ws.run("policy", "batch", str(ws.path("candidates.parquet")), "--at", DECIDE_AT,
           "--out", str(ws.path("decisions.parquet")))
    for msisdn in (first, second, third):
        ws.run("why", msisdn, "--days", "3650")


def _channels(ws: Workspace) -> None:
    ws.heading("Send through the SMS centre simulator",
               "The built-in simulator speaks SMPP 3.4 and CMPP 2.0 on loopback; a long Chinese "
               "message is split into parts and every part gets its delivery receipt.")
    long_text = ("【中国移动】张先生，您的5G智享套餐128元档将于12月31日到期。近3个月您月均用流量37.5GB，"
                 "通话420分钟。推荐5G智享套餐158元档：含60GB流量，续约12个月每月返还30元话费。回复XY158办理。回T退订")
    ws.run("send", "--channel", "sim-smpp", "--to", "+8613800138000", "--text", long_text, "--wait", "5")
    ws.run("send", "--channel", "sim-cmpp", "--to", "+8613900139000",
           "--text", "【中国移动】您的验证码是 482913，5分钟内有效。", "--wait", "5")


RENEWAL_SPEC = """\
name: renewal-by-plan-fit
tenant: operator
category: marketing
template: {code: care.plan_fit}     # the approved catalogue version
audience: {path: renewal.parquet}
# No experiment block: a marketing campaign holds out [analytics] holdout (5%) of its
# audience, recorded as experiment campaign:1 and never sent, to measure the offer against.
validity_hours: 24
tariff: 0.05
"""

USAGE_SPEC = """\
name: usage-alert
tenant: operator
category: notification
template: {code: care.usage_near}
audience: {path: usage.parquet}
validity_hours: 6
tariff: 0.03
"""

ROUTES = [  # China Mobile numbers over CMPP, everyone else over SMPP
    {"channel": "sim-cmpp", "carriers": ["china_mobile"], "backup": "sim-smpp"},
    {"channel": "sim-smpp"},
]


def _template_id(ws: Workspace, code: str) -> int:
    from jingxin.content.catalog import approved_version
    from jingxin.data.store import open_store

    store = open_store(ws.store_url)
    try:
        with store.transaction() as session:
            return approved_version(session, tenant_id="operator", code=code).id
    finally:
        store.dispose()


def _campaigns(ws: Workspace) -> None:
    import pyarrow.parquet as pq

    from jingxin.demo.audience import renewal_audience, usage_alert_audience

    ws.heading("Campaigns through the outbox to the SMS centres",
               "Approved templates rendered per subscriber, decided by policy at the real "
               "time of day (marketing waits out quiet hours), queued durably, then a worker "
               "routes China Mobile numbers over CMPP and the rest over SMPP.")
    pq.write_table(renewal_audience(ws, as_of=AS_OF), ws.path("renewal.parquet"))
    pq.write_table(usage_alert_audience(ws, month="2026-09-01", limit=300), ws.path("usage.parquet"))
    ws.path("renewal.yaml").write_text(RENEWAL_SPEC, encoding="utf-8")
    ws.path("usage.yaml").write_text(USAGE_SPEC, encoding="utf-8")
    ws.run("template", "render", str(_template_id(ws, "care.plan_fit")), "--sample")
    ws.run("campaign", "run", str(ws.path("renewal.yaml")))
    ws.run("campaign", "run", str(ws.path("usage.yaml")))
    ws.run("outbox", "stats")
    ws.run("worker", "--once")
    ws.run("outbox", "stats")
    ws.run("campaign", "status", "2")


def run_demo(*, root: Path, subscribers: int = 100_000, seed: int = 7,
             serve: bool = False) -> None:
    """Run every step in a fresh workspace under ``root``; with ``serve``, keep the web
    application (API and console) running at the end until Ctrl-C."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    ws = Workspace(root=root)
    steps = [
        lambda: _synthesise(ws, subscribers, seed),
        lambda: _import(ws),
        lambda: _audience(ws),
        lambda: _content(ws),
        lambda: _policy(ws),
        lambda: _campaigns(ws),
        lambda: _channels(ws),
        lambda: twoway(ws),
        lambda: hall(ws),
        lambda: geofence(ws),
        lambda: journeys(ws),
        lambda: analytics(ws),
        lambda: api(ws),
    ]
    ws.steps = len(steps)
    began = time.perf_counter()
    with demo_environment(ws, {}):
        for step in steps[:5]:
            step()
        with simulator_process(ws) as channel_env, demo_environment(ws, channel_env):
            for step in steps[5:-2]:
                step()
            report = steps[-2]()  # the proof step sends through the simulator too
            server, password = steps[-1]()
            try:
                ws.console.print()
                ws.console.print(f"[bold]demo finished in {time.perf_counter() - began:.0f} s[/];"
                                 f" its files are in {root} (store, warehouse, synthetic data, "
                                 "decisions)", soft_wrap=True)  # fmt: skip
                ws.console.print(f"[bold]the campaign report:[/] {report} (open it in a "
                                 "browser; it works offline)", soft_wrap=True)  # fmt: skip
                if not serve:
                    ws.console.print(
                        f"[bold]the console:[/] JINGXIN_STORE__URL={ws.store_url} jingxin serve"
                        f", then open http://127.0.0.1:8080/console/ and log in as {ADMIN} "
                        f"with the password {password} (or run the demo with --serve)",
                        soft_wrap=True)  # fmt: skip
                else:
                    ws.console.print(f"[bold]the console:[/] {server.url}/console/ - log in "
                                     f"as {ADMIN} with the password {password}", soft_wrap=True)
                    ws.console.print("serving the console, the API and the simulator until "
                                     "Ctrl-C (run the demo with --no-serve to stop here)")
                    server.wait()
            finally:
                server.stop()

"""Segments, campaign reports and experiment results over the API, on one module-wide
store and warehouse: a finished operator campaign (12 treated, 4 held out, 3 orders), an
acme campaign, a journey's experiment; 240 subscribers in a small DuckDB warehouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from jingxin.audience.examples import EXAMPLES
from jingxin.config import WarehouseSettings
from jingxin.data.store.models import Campaign, ExperimentAssignment, Message
from jingxin.data.warehouse.schema import TABLES
from jingxin.logs import mask
from tests.e2e.api.conftest import ENTERPRISE, make_api

SENT = datetime.now(UTC) - timedelta(days=1)
ARMS = {"main": 12, "holdout": 4}  # assigned; main's first 9 delivered, 3 failed
SUBSCRIBERS = 240
VIP = {"name": "vip", "where": {"all": [{"field": "star_level", "op": "ge", "value": 4},
                                        {"field": "region", "op": "eq", "value": "浦东新区"}]}}


def number(i: int) -> str:
    return f"+86139{i:08d}"


def arm_number(arm: str, i: int) -> str:
    return number(i if arm == "main" else 100 + i)


def _table(name: str, data: dict) -> pa.Table:
    schema = TABLES[name].schema
    return pa.table({f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema)


def build_warehouse(path) -> None:
    from jingxin.data.warehouse.connection import open_duckdb

    n = SUBSCRIBERS
    subscribers = {
        "subscriber_id": list(range(1, n + 1)), "msisdn": [number(i) for i in range(n)],
        "carrier": ["china_mobile"] * n, "plan_id": ["P1" if i % 3 else "P2" for i in range(n)],
        "payment": ["prepaid"] * n, "status": ["active"] * n, "gender": [None] * n,
        "birthday": [None] * n, "entry_date": [dt.date(2020, 1, 1)] * n,
        "contract_end": [None] * n, "star_level": [i % 6 for i in range(n)],
        "region": ["浦东新区" if i % 2 else "徐汇区" for i in range(n)],
        "handset_model": [None] * n, "handset_generation": [4] * n, "app_user": [True] * n,
        "suspended_since": [None] * n,
    }  # fmt: skip
    plans = {"plan_id": ["P1", "P2"], "name": ["畅享18", "畅享58"], "tier": [1, 3],
             "payment": ["prepaid"] * 2, "monthly_fee": [18.0, 58.0], "data_mb": [1024, 10240],
             "voice_min": [100, 500], "sms": [50, 100], "overage_data_per_mb": [0.03] * 2,
             "overage_voice_per_min": [0.15] * 2, "overage_sms": [0.1] * 2,
             "contract_months": [0, 0], "generation": [4, 4]}  # fmt: skip
    wh = open_duckdb(path)
    wh.con.create_table("subscribers", _table("subscribers", subscribers))
    wh.con.create_table("plans", _table("plans", plans))
    wh.close()


def seed(store) -> None:
    from jingxin.analytics.events import record_events

    with store.transaction() as session:
        session.add(Campaign(id=3, tenant_id="operator", name="五一流量包", spec={},
                             category="marketing", status="finished", started_at=SENT))
        session.add(Campaign(id=4, tenant_id=ENTERPRISE, name="acme promo", spec={},
                             category="marketing", status="finished", started_at=SENT))
        for arm, n in ARMS.items():
            for i in range(n):
                session.add(ExperimentAssignment(
                    experiment="campaign:3", msisdn=arm_number(arm, i), arm=arm,
                    holdout=arm == "holdout", tenant_id="operator", assigned_at=SENT))
                if arm == "main":
                    session.add(Message(
                        tenant_id="operator", campaign_id=3, msisdn=arm_number(arm, i),
                        category="marketing", lane=2, text="hi", idempotency_key=f"c3:{i}",
                        state="delivered" if i < 9 else "failed", submitted_at=SENT,
                        finished_at=SENT + timedelta(minutes=1), source="campaign",
                        source_id="3", arm=arm, parts=1))  # fmt: skip
        for i in range(5):
            session.add(ExperimentAssignment(experiment="campaign:4", msisdn=number(200 + i),
                                             arm="main", tenant_id=ENTERPRISE,
                                             assigned_at=SENT))  # fmt: skip
            session.add(ExperimentAssignment(experiment="journey:welcome", msisdn=number(i),
                                             arm="main" if i else "holdout", holdout=not i,
                                             tenant_id="operator", assigned_at=SENT))  # fmt: skip
    record_events(store, [
        {"event_key": f"ordered:b{i}", "kind": "ordered", "at": SENT + timedelta(hours=1),
         "msisdn": arm_number("main", i), "tenant_id": "operator", "source": "campaign",
         "source_id": "3", "campaign_id": 3, "arm": "main", "value": 20.0} for i in range(3)])


@pytest.fixture(scope="module")
def wh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "wh.duckdb"
    build_warehouse(path)
    return path


@pytest.fixture(scope="module")
def rapi(tmp_path_factory, migrated_templates, wh_file):
    home = tmp_path_factory.mktemp("home")
    path = home / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    made, client = make_api(f"sqlite:///{path}", home=home,
                            warehouse=WarehouseSettings(path=str(wh_file)))  # fmt: skip
    seed(made.store)
    with client:
        yield made
    made.store.dispose()


# --------------------------------------------------------------------------------- segments


def test_segment_examples_are_listed_and_valid(rapi) -> None:
    from jingxin.audience.compile import prepare
    from jingxin.audience.spec import parse_spec

    listed = rapi.as_user("analyst").get("/api/v1/segments").json()
    assert [s["name"] for s in listed["items"]] == [e.name for e in EXAMPLES]
    for example in EXAMPLES:  # each passes the field catalogue
        prepare(parse_spec(example.spec, source=example.name), source=example.name)


def test_a_segment_is_counted_as_the_cli_counts_it(rapi, wh_file, tmp_path) -> None:
    from jingxin.audience.compile import compile_spec
    from jingxin.audience.explain import count
    from jingxin.data.warehouse.connection import open_duckdb

    # When the analyst previews a segment
    r = rapi.as_user("analyst").post("/api/v1/segments/preview", json={
        "spec": VIP, "breakdown": True, "rows": 3})  # fmt: skip
    assert r.status_code == 200, r.text
    shown = r.json()
    # Then the count is what `jingxin audience count` computes from the same spec file
    (tmp_path / "vip.yaml").write_text(
        "name: vip\nwhere: {all: [{field: star_level, op: ge, value: 4}, "
        "{field: region, op: eq, value: 浦东新区}]}\n", encoding="utf-8")  # fmt: skip
    wh = open_duckdb(wh_file, read_only=True)
    try:
        assert shown["count"] == count(compile_spec(wh, tmp_path / "vip.yaml")) == 40
    finally:
        wh.close()
    assert (shown["name"], shown["warnings"]) == ("vip", [])
    assert sum(g["subscribers"] for g in shown["breakdown"]["region"]) == 40
    # And the rows show numbers masked to an analyst, whole to an admin
    assert [row["msisdn"] for row in shown["rows"]] == [mask(number(i)) for i in (5, 11, 17)]
    r = rapi.as_user("admin").post("/api/v1/segments/preview", json={"spec": VIP, "rows": 1})
    assert r.json()["rows"][0]["msisdn"] == number(5)


def test_a_bad_segment_names_its_path(rapi) -> None:
    analyst = rapi.as_user("analyst")
    cases = [({"where": {"all": [{"field": "region", "op": "eq", "value": "x"},
                                 {"field": "arpuu", "op": "gt", "value": 1}]}},
              "spec: where.all[1].field: unknown field 'arpuu'; did you mean 'arpu'?"),
             ({"where": {"field": "star_level", "op": "ge", "value": "many"}},
              "where.value: field 'star_level' is int, got 'many'"),
             ({"where": {"field": "region", "op": "sounds_like", "value": "x"}}, "where.op"),
             ({"exclude_files": ["/etc/passwd"]}, "spec: exclude_files: files are not read"),
             ({"combine": [{"op": "minus", "segment": "../x.yaml"}]},
              "spec: combine[0].segment: a segment file is not read over the API")]  # fmt: skip
    for spec, words in cases:
        r = analyst.post("/api/v1/segments/preview", json={"spec": spec})
        assert r.status_code == 422, r.text
        assert words in r.json()["error"]["message"], r.text
    r = analyst.post("/api/v1/segments/preview", json={"spec": VIP, "rows": 500})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body.rows"


def test_a_never_matching_segment_says_so(rapi) -> None:
    never = {"where": {"all": [{"field": "star_level", "op": "gt", "value": 4},
                               {"field": "star_level", "op": "lt", "value": 2}]}}
    shown = rapi.as_user("marketer").post("/api/v1/segments/preview", json={"spec": never}).json()
    assert shown["count"] == 0 and shown["warnings"]


def test_segments_are_the_operators_only(rapi) -> None:
    acme = rapi.as_user("marketer", tenant=ENTERPRISE)
    assert acme.get("/api/v1/segments").status_code == 403
    r = acme.post("/api/v1/segments/preview", json={"spec": VIP})
    assert r.status_code == 403 and "operator" in r.json()["error"]["message"]
    # An API client has no segments.read at all
    r = rapi.as_key("api-client", tenant="operator").get("/api/v1/segments")
    assert r.status_code == 403 and "segments.read" in r.json()["error"]["message"]


# ---------------------------------------------------------------------------------- reports


def test_the_campaign_report_as_figures(rapi) -> None:
    r = rapi.as_user("analyst").get("/api/v1/reports/campaigns/3")
    assert r.status_code == 200, r.text
    report = r.json()
    assert "五一流量包" in report["title"]
    arms = {row["arm"]: row for row in report["tables"]["arms"]["rows"]}
    assert (arms["main"]["assigned"], arms["main"]["delivered"], arms["main"]["ordered"]) == (
        12, 9, 3)
    assert arms["holdout"]["assigned"] == 4
    assert any(label.startswith("订购率") for label in (h["label"] for h in report["headline"]))
    # The operator's report has its breakdowns from the warehouse
    assert sum(row["assigned"] for row in report["tables"]["by_plan"]["rows"]) == 16


def test_the_campaign_report_as_files(rapi) -> None:
    analyst = rapi.as_user("analyst")
    r = analyst.get("/api/v1/reports/campaigns/3?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="campaign-3.csv"'
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"))))
    main = next(row for row in rows if row["table"] == "arms" and row["arm"] == "main")
    assert (main["assigned"], main["ordered"]) == ("12", "3")
    assert "+86139" not in r.text  # no report lists a number: nothing to mask
    r = analyst.get("/api/v1/reports/campaigns/3?format=html")
    assert r.headers["content-type"].startswith("text/html") and "按区县 By district" in r.text
    r = analyst.get("/api/v1/reports/campaigns/3?format=xlsx")
    assert r.content[:2] == b"PK" and r.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    r = analyst.get("/api/v1/reports/campaigns/3?format=pdf")
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "query.format"


def test_reports_are_tenant_scoped(rapi) -> None:
    acme = rapi.as_key("api-client", tenant=ENTERPRISE)  # reports.read
    assert acme.get("/api/v1/reports/campaigns/3").status_code == 404
    assert rapi.as_user("analyst").get("/api/v1/reports/campaigns/4").status_code == 404
    assert rapi.as_user("analyst").get("/api/v1/reports/campaigns/99").status_code == 404
    # acme reads its own, without the operator's warehouse breakdowns
    report = acme.get("/api/v1/reports/campaigns/4").json()
    assert "by_plan" not in report["tables"] and "acme promo" in report["title"]
    assert any("operator's subscriber warehouse" in note for note in report["notes"])
    assert rapi.client.get("/api/v1/reports/campaigns/3").status_code == 401


def test_experiment_results(rapi) -> None:
    analyst = rapi.as_user("analyst")
    r = analyst.get("/api/v1/experiments/campaign/3?metric=ordered")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert (shown["experiment"], shown["holdout"], shown["uplift_measurable"]) == (
        "campaign:3", "holdout", True)
    arms = {row["arm"]: row for row in shown["comparison"]["arms"]}
    assert (arms["main"]["n"], arms["main"]["successes"], arms["main"]["role"]) == (12, 3, "treated")
    assert arms["main"]["rate_low"] < 0.25 < arms["main"]["rate_high"]
    assert "incremental" in arms["main"] and arms["holdout"]["role"] == "holdout"
    # A journey's experiment is found by its name
    r = analyst.get("/api/v1/experiments/journey/welcome?metric=delivered")
    assert r.status_code == 200 and r.json()["holdout"] == "holdout"
    # Another tenant's experiment, or an unknown one, is 404; a bad id or metric 422
    acme = rapi.as_user("analyst", tenant=ENTERPRISE)
    for client, url in ((acme, "campaign/3"), (acme, "journey/welcome"), (analyst, "campaign/4"),
                        (analyst, "fence/nowhere")):  # fmt: skip
        r = client.get(f"/api/v1/experiments/{url}")
        assert r.status_code == 404, (url, r.text)
    assert acme.get("/api/v1/experiments/campaign/4").status_code == 200
    r = analyst.get("/api/v1/experiments/campaign/three")
    assert r.status_code == 422 and "not a campaign id" in r.json()["error"]["message"]
    assert analyst.get("/api/v1/experiments/campaign/3?metric=likes").status_code == 422
    assert analyst.get("/api/v1/experiments/party/3").status_code == 422

"""Reports (analytics.report): a campaign's report from a small store with assignments,
messages and events put in by hand, written as offline HTML, CSV and XLSX and read back;
the empty and unknown campaigns; the hall, retention and plan-fit adapters."""

from __future__ import annotations

import csv
import datetime as dt
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from jingxin.analytics.report import Report, campaign_report, write_report
from jingxin.config import Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import Campaign, ExperimentAssignment, Message
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError

SENT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
NOW = SENT + timedelta(days=2)
CAMPAIGN = 7
# arm -> (assigned, delivered, clicked, ordered); numbers +86138000<arm digit><nn>
ARMS = {"A": (20, 18, 6, 4), "B": (20, 16, 2, 1), "holdout": (10, 0, 0, 1)}
REGIONS = ("浦东新区", "闵行区")


def number(arm: str, i: int) -> str:
    return f"+8613800{'ABh'.index(arm[0])}{i:04d}"


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    yield opened
    opened.dispose()


def seed(store, *, campaign_id: int = CAMPAIGN, events: bool = True) -> None:
    """A campaign of arms A and B with a hold-out: assignments, messages (sent, delivered
    or failed, two parts each, A's priced by the route), clicks and orders as events."""
    from jingxin.analytics.events import record_events

    with store.transaction() as session:
        session.add(Campaign(id=campaign_id, tenant_id="t1", name="流量包 spring", spec={},
                             category="marketing", status="running", started_at=SENT))
        if not events:
            return
        for arm, (assigned, delivered, _, _) in ARMS.items():
            for i in range(assigned):
                msisdn = number(arm, i)
                session.add(ExperimentAssignment(
                    experiment=f"campaign:{campaign_id}", msisdn=msisdn, arm=arm,
                    holdout=arm == "holdout", tenant_id="t1", assigned_at=SENT))
                if arm == "holdout":
                    continue
                session.add(Message(
                    tenant_id="t1", campaign_id=campaign_id, msisdn=msisdn,
                    category="marketing", lane=2, text="hi", parts=2,
                    idempotency_key=f"campaign:{campaign_id}:{msisdn}",
                    state="delivered" if i < delivered else "failed",
                    submitted_at=SENT + timedelta(minutes=i),
                    finished_at=SENT + timedelta(minutes=i + 1), source="campaign",
                    source_id=str(campaign_id), arm=arm, cost=0.08 if arm == "A" else None))
    rows = []
    for arm, (_, _, clicked, ordered) in ARMS.items():
        for i in range(max(clicked, ordered)):
            base = {"msisdn": number(arm, i), "tenant_id": "t1", "source": "campaign",
                    "source_id": str(campaign_id), "campaign_id": campaign_id, "arm": arm}
            if i < clicked:
                rows.append({**base, "event_key": f"clicked:x{arm}{i}", "kind": "clicked",
                             "at": SENT + timedelta(hours=2)})
            if i < ordered:
                rows.append({**base, "event_key": f"ordered:boss-{arm}{i}", "kind": "ordered",
                             "at": SENT + timedelta(hours=3), "value": 30.0})
    record_events(store, rows)


def warehouse():
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(":memory:")
    schema = TABLES["subscribers"].schema
    numbers = [number(arm, i) for arm, (n, *_) in ARMS.items() for i in range(n)]
    n = len(numbers)
    data = {
        "subscriber_id": list(range(1, n + 1)), "msisdn": numbers,
        "carrier": ["china_mobile"] * n, "plan_id": [f"P{i % 3}" for i in range(n)],
        "payment": ["prepaid" if i % 2 else "postpaid" for i in range(n)],
        "status": ["active"] * n, "gender": [None] * n, "birthday": [None] * n,
        # 3 months, then 18 months, then 8 years before the campaign
        "entry_date": [dt.date(2025, 11, 15), dt.date(2024, 8, 1), dt.date(2018, 1, 1)]
        * (n // 3) + [dt.date(2018, 1, 1)] * (n % 3),
        "contract_end": [None] * n, "star_level": [1] * n,
        "region": [REGIONS[i % 2] for i in range(n)], "handset_model": [None] * n,
        "handset_generation": [4] * n, "app_user": [True] * n, "suspended_since": [None] * n,
    }
    wh.con.create_table("subscribers", pa.table(
        {f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema))
    return wh


def settings() -> Settings:
    return Settings()


@pytest.fixture
def any_store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def test_campaign_report_counts_arms_funnel_money_and_breakdowns(any_store) -> None:
    # Given a campaign with arms A, B and a hold-out, and a warehouse of its subscribers
    # (on SQLite and on PostgreSQL: the hours are grouped in each one's SQL)
    store = any_store
    seed(store)
    wh = warehouse()
    # When its report is made
    report = campaign_report(store, wh, CAMPAIGN, settings=settings(), now=NOW)
    # Then the arms count distinct subscribers from the event log
    arms = {r["arm"]: r for r in report.tables["arms"].to_pylist()}
    assert [(a, arms[a]["assigned"], arms[a]["delivered"], arms[a]["clicked"],
             arms[a]["ordered"]) for a in ("A", "B", "holdout")] == [
        ("A", 20, 18, 6, 4), ("B", 20, 16, 2, 1), ("holdout", 10, 0, 0, 1)]
    assert arms["A"]["ordered_rate"] == pytest.approx(0.2)
    assert arms["A"]["ordered_rate_low"] < 0.2 < arms["A"]["ordered_rate_high"]
    # And the funnel adds up the treated arms
    funnel = {r["stage"]: r for r in report.tables["funnel"].to_pylist()}
    assert {k: r["subscribers"] for k, r in funnel.items()} == {
        "assigned": 40, "sent": 40, "delivered": 34, "clicked": 8, "replied": 0, "ordered": 5,
        "opted_out": 0, "complained": 0}
    # (orders count by assignment: their base is the assigned, not the delivered)
    assert (funnel["ordered"]["base"], funnel["ordered"]["of_base_share"]) == (
        "assigned", pytest.approx(5 / 40))
    # And cost is messages.cost for A (20 × 0.08) and 2 parts × 0.05 for B's 20
    summary = {r["measure"]: r["value"] for r in report.tables["summary"].to_pylist()}
    assert summary["cost"] == pytest.approx(20 * 0.08 + 20 * 2 * 0.05)
    assert summary["revenue"] == pytest.approx(150.0)
    # incremental revenue: 150 − (30 / 10 hold-outs) × 40 treated = 30; ROI (30 − 3.6) / 3.6
    assert summary["incremental_revenue"] == pytest.approx(30.0)
    assert summary["roi"] == pytest.approx((30.0 - 3.6) / 3.6)
    assert summary["uplift"] == pytest.approx(5 / 40 - 1 / 10)
    assert any("incremental revenue" in n for n in report.notes)
    # And each arm is compared with the hold-out on orders, and B with A on each outcome
    rows = report.tables["comparisons"].to_pylist()
    versus_holdout = {r["arm"]: r for r in rows if r["control"] == "holdout"}
    assert set(versus_holdout) == {"A", "B", "(all treated)"}
    assert versus_holdout["A"]["diff"] == pytest.approx(0.1)
    assert versus_holdout["A"]["incremental"] == pytest.approx(2.0)
    assert {r["metric"] for r in rows if r["control"] == "A"} == {
        "clicked", "replied", "ordered", "opted_out", "complained"}
    # And the timeline has the sends at 09:00 Shanghai time, clicks at 11:00
    timeline = report.tables["timeline"].to_pylist()
    assert timeline[0]["hour"].hour == 9 and timeline[0]["sent"] == 40
    assert next(r for r in timeline if r["clicked"])["hour"].hour == 11
    # And the breakdowns join the warehouse (tenure banded at the campaign's day)
    tenure = {r["tenure"]: r["assigned"] for r in report.tables["by_tenure"].to_pylist()}
    assert list(tenure) == ["0-6m", "1-2y", "5y+"] and sum(tenure.values()) == 50
    region = {r["region"]: r for r in report.tables["by_region"].to_pylist()}
    assert set(region) == set(REGIONS)
    assert sum(r["ordered"] for r in region.values()) == 6
    segments = report.tables["by_segment"].column("segment").to_pylist()
    assert sorted(segments) == ["后付费 postpaid", "预付费 prepaid"]
    assert any("payment type" in n for n in report.notes)
    assert len(report.tables["by_plan"]) == 3
    # And nothing in it is a subscriber's number
    assert not any("+86138" in str(v) for t in report.tables.values()
                   for col in t.columns for v in col.to_pylist())
    wh.close()


def test_report_files_html_offline_csv_and_xlsx_read_back(store, tmp_path) -> None:
    # Given a campaign report
    seed(store)
    wh = warehouse()
    report = campaign_report(store, wh, CAMPAIGN, settings=settings(), now=NOW)
    wh.close()
    # When it is written as HTML
    page = write_report(report, tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    # Then it is one page that fetches nothing, with plotly.js inlined once
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//",
                         page, re.IGNORECASE)
    assert page.count("plotly.js v") == 1
    assert page.count("<div id=\"chart-") == len(report.charts) >= 5
    assert "转化漏斗" in page and "Funnel" in page and "<table>" in page
    assert "+86138" not in page
    # When it is written as CSV: one long file, a table column, the same numbers
    with (write_report(report, tmp_path / "r.csv")).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    arms = {r["arm"]: r for r in rows if r["table"] == "arms"}
    assert int(arms["A"]["ordered"]) == 4 and float(arms["B"]["cost"]) == pytest.approx(2.0)
    notes = [r["note"] for r in rows if r["table"] == "notes"]
    assert notes == report.notes
    # When it is written as XLSX: a sheet per table, bold headers, the same numbers
    from openpyxl import load_workbook

    book = load_workbook(write_report(report, tmp_path / "r.xlsx"))
    assert book.sheetnames == ["notes", *report.tables]
    sheet = book["arms"]
    header = [c.value for c in sheet[1]]
    assert header == report.tables["arms"].column_names and sheet["A1"].font.bold
    got = {row[0]: dict(zip(header, row, strict=True))
           for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert got["A"]["ordered_rate"] == pytest.approx(0.2) and got["holdout"]["holdout"] is True
    assert sheet.column_dimensions["A"].width >= len("holdout")


def test_unknown_suffix_and_unwritable_out_are_errors(tmp_path) -> None:
    report = Report(title="t")
    with pytest.raises(InputError, match=r"r\.pdf.*\.html, \.csv, \.xlsx"):
        write_report(report, tmp_path / "r.pdf")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        write_report(report, tmp_path / "file" / "r.html")
    assert not list(tmp_path.glob(".r.*"))  # never half-written


def test_campaign_without_messages_or_sends_has_notes(store, tmp_path) -> None:
    # Given a campaign that was created but never ran
    seed(store, events=False)
    report = campaign_report(store, None, CAMPAIGN, settings=settings(), now=NOW)
    # Then its report says why it is empty, and still writes
    assert any("run it" in n for n in report.notes)
    assert "jingxin campaign run" in write_report(report, tmp_path / "e.html").read_text()
    # Given messages queued but none sent (the worker did not run)
    with store.transaction() as session:
        session.add(ExperimentAssignment(experiment=f"campaign:{CAMPAIGN}", msisdn=number("A", 1),
                                         arm="A", tenant_id="t1", assigned_at=SENT))
        session.add(Message(tenant_id="t1", campaign_id=CAMPAIGN, msisdn=number("A", 1),
                            category="marketing", lane=2, text="hi", idempotency_key="k1",
                            source="campaign", source_id=str(CAMPAIGN), arm="A"))
    report = campaign_report(store, None, CAMPAIGN, settings=settings(), now=NOW)
    assert any("no message was sent yet: run the worker" in n for n in report.notes)
    assert any("no hold-out" in n for n in report.notes)
    for suffix in (".html", ".csv", ".xlsx"):
        assert write_report(report, tmp_path / f"q{suffix}").stat().st_size > 0


def test_unknown_campaign_is_an_error_naming_it(store) -> None:
    with pytest.raises(InputError, match="campaign 99: no such campaign"):
        campaign_report(store, None, 99, settings=settings(), now=NOW)


# ----------------------------------------------------------------------------- adapters


def test_hall_report_adapter_masks_referral_chains(store, tmp_path) -> None:
    from jingxin.analytics.report_sources import hall_report
    from jingxin.data.store.models.hall import (
        HallFeedback,
        HallInteraction,
        HallOrder,
        HallReferral,
    )

    # Given a hall with a zone listing, an order under a staff code, a referral, NPS answers
    a, b = "+8613912345678", "+8613912340000"
    at = NOW - timedelta(days=3)
    with store.transaction() as session:
        session.add_all([
            HallInteraction(mo_id=1, msisdn=a, service_number="10086", command="zone",
                            zone="42", kind="query", outcome="answered", at=at),
            HallInteraction(mo_id=2, msisdn=a, service_number="10086", command="order",
                            zone="42", kind="order", outcome="placed", at=at),
            HallOrder(request_key="hall:2", msisdn=a, service_number="10086", product_id="LL10",
                      zone="42", list_fee_fen=1000, price_fen=800, staff_code="S1",
                      state="placed", created_at=at, updated_at=at),
            HallReferral(referrer=a, friend=b, product_id="RBT5", state="converted",
                         created_at=at, converted_at=at),
            *(HallFeedback(mo_id=10 + i, msisdn=a, kind="nps", score=s, at=at)
              for i, s in enumerate((10, 9, 3))),
        ])  # fmt: skip
    # When the hall's report is made
    report = hall_report(store, now=NOW, months=1)
    # Then the hall's numbers are its tables, chains masked
    summary = {r["measure"]: r["value"] for r in report.tables["summary"].to_pylist()}
    assert (summary["users"], summary["interactions"], summary["nps"]) == (1, 2, pytest.approx(
        100 * (2 - 1) / 3, abs=0.05))
    assert report.tables["zones"].to_pylist() == [
        {"zone": "42", "viewers": 1, "orders": 1, "placed": 1, "conversion": 1.0}]
    assert report.tables["longest_chains"].column("chain").to_pylist() == [
        "+861391234**** → +861391234****"]
    assert report.tables["leaderboard"].to_pylist()[0]["key"] == "S1"
    page = write_report(report, tmp_path / "hall.html").read_text(encoding="utf-8")
    assert a not in page and b not in page and "短信营业厅" in page
    assert len(report.charts) == 4


def test_retention_report_adapter_rates_per_branch(store) -> None:
    from jingxin.analytics.report_sources import retention_report
    from jingxin.data.store.models.journeys import WorkOrder

    # Given three orders in one branch (one reactivated, one lost) and one in another
    with store.transaction() as session:
        session.add_all([
            WorkOrder(subscriber_id=i, msisdn=f"+861390000000{i}", episode="2026-03-01",
                      branch=branch, state=state, barred_since=dt.date(2026, 3, 1),
                      extracted_on=dt.date(2026, 3, 10))
            for i, (branch, state) in enumerate([("浦东", "reactivated"), ("浦东", "lost"),
                                                 ("浦东", "created"), ("闵行", "assigned")])
        ])  # fmt: skip
    report = retention_report(store, since=dt.date(2026, 3, 1), now=NOW)
    rows = [(r["branch"], r["orders"], r["reactivated"], r["lost"], r["rate"])
            for r in report.tables["branches"].to_pylist()]
    assert rows == [("浦东", 3, 1, 1, pytest.approx(1 / 3)), ("闵行", 1, 0, 0, 0.0),
                    ("all 全部", 4, 1, 1, 0.25)]
    assert len(report.charts) == 2
    # And with nothing extracted since, a note says what to run
    empty = retention_report(store, since=dt.date(2026, 4, 1), now=NOW)
    assert any("retention extract" in n for n in empty.notes)


def test_planfit_report_adapter_reads_the_plan_fit_build() -> None:
    from jingxin.analytics.report_sources import planfit_report
    from jingxin.data.warehouse.connection import open_duckdb

    # Given a plan_fit build of four subscribers (two could save, one is fine)
    wh = open_duckdb(":memory:")
    day = dt.date(2026, 3, 1)
    wh.con.create_table("plan_fit", pa.table({
        "subscriber_id": [1, 2, 3, 4], "as_of": [day] * 4,
        "plan_id": ["P58", "P58", "P38", "P38"], "current_cost": [80.0, 70.0, 38.0, 45.0],
        "mismatch": ["under", "under", "fit", "over"],
        "best_plan_id": ["P38", "P38", "P38", "P58"], "best_cost": [42.0, 62.0, 38.0, 45.0],
        "saving": [38.0, 8.0, 0.0, 0.0], "up_plan_id": [None, None, "P58", "P58"],
        "up_extra": [None, None, 20.0, 13.0],
        "message": ["省38元", "省8元", None, "多付13元"],
    }))  # fmt: skip
    report = planfit_report(wh, top=5, now=NOW)
    summary = {r["measure"]: r["value"] for r in report.tables["summary"].to_pylist()}
    assert (summary["subscribers"], summary["recommended"], summary["could_save"],
            summary["up_tier"], summary["total_saving"]) == (4, 3, 2, 1, 46.0)
    assert {r["mismatch"]: r["subscribers"] for r in report.tables["mismatch"].to_pylist()} == {
        "fit": 1, "over": 1, "under": 2}
    moves = report.tables["moves"].to_pylist()
    assert (moves[0]["plan_id"], moves[0]["best_plan_id"], moves[0]["subscribers"]) == (
        "P58", "P38", 2)
    bands = {r["band"]: r["subscribers"] for r in report.tables["savings"].to_pylist()}
    assert (bands["5-10"], bands["20-50"], sum(bands.values())) == (1, 1, 2)
    # And a date without a build is an error saying what to run
    with pytest.raises(InputError, match="no plan fit as of 2026-04-01: run `jingxin audience"):
        planfit_report(wh, as_of=dt.date(2026, 4, 1), now=NOW)
    wh.close()

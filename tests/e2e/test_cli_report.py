"""``jingxin report`` end to end: a campaign's report as HTML, CSV and XLSX (and to the
default reports folder), the hall's report; an unknown suffix and an unknown campaign are
one line naming them."""

from __future__ import annotations

import csv
import datetime as dt
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.models import Campaign, ExperimentAssignment, Message
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError

SENT = datetime.now(UTC) - timedelta(days=1)
ARMS = {"main": 12, "holdout": 4}  # assigned; main's first 9 delivered, 3 failed


def number(arm: str, i: int) -> str:
    return f"+86139{'mh'.index(arm[0])}{i:07d}"


def subscribers() -> pa.Table:
    schema = TABLES["subscribers"].schema
    numbers = [number(arm, i) for arm, n in ARMS.items() for i in range(n)]
    n = len(numbers)
    data = {
        "subscriber_id": list(range(1, n + 1)), "msisdn": numbers,
        "carrier": ["china_mobile"] * n, "plan_id": ["P1", "P2"] * (n // 2),
        "payment": ["prepaid"] * n, "status": ["active"] * n, "gender": [None] * n,
        "birthday": [None] * n, "entry_date": [dt.date(2020, 1, 1)] * n,
        "contract_end": [None] * n, "star_level": [1] * n, "region": ["浦东新区"] * n,
        "handset_model": [None] * n, "handset_generation": [4] * n, "app_user": [True] * n,
        "suspended_since": [None] * n,
    }  # fmt: skip
    return pa.table({f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema)


@pytest.fixture
def cli(tmp_path, migrated_sqlite, monkeypatch):
    # Settings from a jingxin.toml in an empty directory: a store and a warehouse there
    from jingxin.analytics.events import record_events
    from jingxin.data.warehouse.connection import open_duckdb

    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(
        '[store]\nurl = "sqlite:///jx.db"\n\n[warehouse]\npath = "wh.duckdb"\n',
        encoding="utf-8")  # fmt: skip
    wh = open_duckdb(tmp_path / "wh.duckdb")
    wh.con.create_table("subscribers", subscribers())
    wh.close()
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with store.transaction() as session:
        session.add(Campaign(id=3, tenant_id="t1", name="五一流量包", spec={},
                             category="marketing", status="finished", started_at=SENT))
        for arm, n in ARMS.items():
            for i in range(n):
                session.add(ExperimentAssignment(experiment="campaign:3", msisdn=number(arm, i),
                                                 arm=arm, holdout=arm == "holdout",
                                                 tenant_id="t1", assigned_at=SENT))
                if arm == "main":
                    session.add(Message(
                        tenant_id="t1", campaign_id=3, msisdn=number(arm, i),
                        category="marketing", lane=2, text="hi", idempotency_key=f"c3:{i}",
                        state="delivered" if i < 9 else "failed", submitted_at=SENT,
                        finished_at=SENT + timedelta(minutes=1), source="campaign",
                        source_id="3", arm=arm))  # fmt: skip
    record_events(store, [
        {"event_key": f"ordered:b{i}", "kind": "ordered", "at": SENT + timedelta(hours=1),
         "msisdn": number("main", i), "tenant_id": "t1", "source": "campaign",
         "source_id": "3", "campaign_id": 3, "arm": "main", "value": 20.0} for i in range(3)])
    store.dispose()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def _ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def test_campaign_report_in_each_format(cli, tmp_path) -> None:
    # When the campaign's report is written (HTML, to the reports folder by default)
    shown = _ok(cli("report", "campaign", "3"))
    # Then the command names the file and sums it up on one screen, no number in sight
    assert "wrote var/reports/campaign-3.html" in shown and "五一流量包" in shown
    assert "订购率 order rate (treated)" in shown and "25.00%" in shown  # 3 of 12
    assert len(shown.splitlines()) <= 25 and "+86139" not in shown
    page = (tmp_path / "var" / "reports" / "campaign-3.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?:", page)
    assert "按区县 By district" in page
    # And as CSV and XLSX with the same numbers
    _ok(cli("report", "campaign", "3", "--out", "c3.csv"))
    with (tmp_path / "c3.csv").open(encoding="utf-8", newline="") as f:
        arms = {r["arm"]: r for r in csv.DictReader(f) if r["table"] == "arms"}
    assert (arms["main"]["assigned"], arms["main"]["delivered"], arms["main"]["ordered"]) == (
        "12", "9", "3")
    _ok(cli("report", "campaign", "3", "--out", "c3.xlsx"))
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "c3.xlsx")["by_plan"]
    assert [c.value for c in sheet[1]][:2] == ["plan_id", "assigned"]
    assert sorted(r[1] for r in sheet.iter_rows(min_row=2, values_only=True)) == [8, 8]


def test_bad_out_and_unknown_campaign_are_one_line(cli, tmp_path) -> None:
    done = cli("report", "campaign", "3", "--out", "c3.pdf")
    assert isinstance(done.exception, InputError)
    assert "c3.pdf: unknown report format '.pdf'" in str(done.exception)
    done = cli("report", "campaign", "404", "--out", "x.html")
    assert isinstance(done.exception, InputError)
    assert "campaign 404: no such campaign" in str(done.exception)
    assert not (tmp_path / "x.html").exists()


def test_hall_report_to_xlsx(cli, tmp_path) -> None:
    shown = _ok(cli("report", "hall", "--months", "1", "--out", "hall.xlsx"))
    assert "wrote hall.xlsx" in shown and "nobody used the hall" in shown
    from openpyxl import load_workbook

    assert {"summary", "zones", "leaderboard"} <= set(load_workbook(tmp_path / "hall.xlsx")
                                                      .sheetnames)

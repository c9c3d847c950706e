"""The renewal trigger on a hand-made warehouse: who is due, the subscriber's own figures
in the text, the plan-fit recommendation, and the skipped by reason.

Day 2026-03-15, renewal 30 days before: contracts ending 2026-04-14 are due. The last
three months are Dec 2025 - Feb 2026, a year earlier Dec 2024 - Feb 2025.

1 due, light user on P3 (10 GB, 58 yuan): 480/500/520 MB (avg 500), 40/50/60 min
  (avg 50), bill 58 (a year ago 400 MB and 60 yuan: +25% data, 2 yuan less)
  → plan fit recommends P2 (38 yuan), saving 20 yuan a month.
2 due, heavy data on Q2 for the last three months only → no year-on-year figure: the
  plan-fit template (care.plan_fit) with the recommendation sentence.
3 due, no usage at all → skipped no_usage.
4 due, on Q3 and it fits (a tier up costs 29 yuan more) → skipped no_recommendation.
5 contract ends another day; 6 churned though due → not candidates.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from jingxin.config import Settings
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers.renewal import RENEWAL

D = dt.date
DAY = D(2026, 3, 15)
ENDS = D(2026, 4, 14)

PLANS = [
    # id, name, tier, payment, fee, data, voice, sms, od, ov, os, contract, gen
    ("P1", "畅享18", 1, "prepaid", 18.0, 1024, 100, 50, 0.03, 0.15, 0.1, 0, 4),
    ("P2", "畅享38", 2, "prepaid", 38.0, 5120, 300, 100, 0.03, 0.15, 0.1, 0, 4),
    ("P3", "畅享58", 3, "prepaid", 58.0, 10240, 500, 100, 0.03, 0.15, 0.1, 0, 4),
    ("Q2", "全球通39", 2, "postpaid", 39.0, 6144, 300, 100, 0.03, 0.15, 0.1, 12, 5),
    ("Q3", "全球通59", 3, "postpaid", 59.0, 20480, 500, 100, 0.03, 0.15, 0.1, 12, 5),
    ("Q4", "全球通88", 4, "postpaid", 88.0, 40960, 1000, 200, 0.03, 0.15, 0.1, 12, 5),
]


def subscriber(sid: int, plan: str, *, status: str = "active", gender: str | None = "F",
               contract_end: dt.date | None = ENDS) -> tuple:  # fmt: skip
    payment = "prepaid" if plan.startswith("P") else "postpaid"
    return (sid, f"+86138000000{sid:02d}", "china_mobile", plan, payment, status, gender,
            D(1980, 1, 1), D(2015, 6, 1), contract_end, 3, "浦东新区", None, 5, False, None)


SUBSCRIBERS = [
    subscriber(1, "P3"), subscriber(2, "Q2", gender="M"), subscriber(3, "P2"),
    subscriber(4, "Q3"), subscriber(5, "P3", contract_end=D(2026, 4, 15)),
    subscriber(6, "P3", status="churned"),
]
NOW_MONTHS = [D(2025, 12, 1), D(2026, 1, 1), D(2026, 2, 1)]
YEAR_AGO = [D(2024, 12, 1), D(2025, 1, 1), D(2025, 2, 1)]


def usage() -> list[tuple]:
    rows = []
    # id, month, plan, data, voice, sms, bill, topups, topup yuan, roaming dom, intl
    for i, month in enumerate(NOW_MONTHS):
        rows.append((1, month, "P3", 480.0 + 20 * i, 40.0 + 10 * i, 5, 58.0, 0, 0.0, 0, 0))
        rows.append((2, month, "Q2", 8000.0, 200.0, 10, 39.0 + (8000 - 6144) * 0.03, 0, 0.0,
                     0, 0))
        rows.append((4, month, "Q3", 15000.0, 300.0, 10, 59.0, 0, 0.0, 0, 0))
        rows.append((5, month, "P3", 500.0, 50.0, 5, 58.0, 0, 0.0, 0, 0))
        rows.append((6, month, "P3", 500.0, 50.0, 5, 58.0, 0, 0.0, 0, 0))
    for month in YEAR_AGO:
        rows.append((1, month, "P3", 400.0, 50.0, 5, 60.0, 0, 0.0, 0, 0))
        rows.append((4, month, "Q3", 15000.0, 300.0, 10, 59.0, 0, 0.0, 0, 0))
    return rows


def table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)  # fmt: skip


@pytest.fixture(scope="module")
def warehouse():
    wh = open_duckdb(":memory:")
    for name, rows in (("plans", PLANS), ("subscribers", SUBSCRIBERS),
                       ("usage_monthly", usage())):  # fmt: skip
        wh.con.create_table(name, table(name, rows), overwrite=True)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def output(warehouse):
    return RENEWAL.candidates(TriggerContext(warehouse=warehouse, day=DAY, settings=Settings()))


def by_subscriber(output) -> dict[int, dict]:
    return {row["subscriber_id"]: row for row in output.candidates.to_pylist()}


def test_exactly_the_due_subscribers_with_a_recommendation_are_candidates(output) -> None:
    # Then 1 gets the renewal template, 2 (no usage a year ago) the plan-fit one
    rows = by_subscriber(output)
    assert {sid: row["template"] for sid, row in rows.items()} == {
        1: "care.plan_renewal", 2: "care.plan_fit"}
    # And the due subscribers left out are counted by reason
    assert output.skipped == {"no_usage": 1, "no_recommendation": 1}


def test_the_renewal_row_carries_the_subscribers_own_figures(output) -> None:
    row = by_subscriber(output)[1]
    assert row["msisdn"] == "+8613800000001"
    assert (row["name"], row["plan_name"], row["expiry"]) == ("尊敬的女士", "畅享58套餐", ENDS)
    assert (row["avg_data_mb"], row["avg_voice_min"]) == (500, 50)
    assert row["data_yoy"] == pytest.approx(0.25)
    assert (row["avg_fee"], row["fee_change"]) == (pytest.approx(58.0), pytest.approx(-2.0))
    assert (row["rec_plan"], row["rec_fee"], row["rec_data_mb"]) == ("畅享38套餐", 38.0, 5120)
    assert (row["offer"], row["order_code"]) == ("每月可省20.0元", "XYP2")


def test_the_renewal_text_renders_with_those_figures(output) -> None:
    from jingxin.content.library import library_document
    from jingxin.content.templates import render

    # Given the starter library's renewal template and subscriber 1's row
    document = library_document("care.plan_renewal")
    row = by_subscriber(output)[1]
    values = {name: row[name] for name in document.variables}
    # When it is rendered as the delivery entry renders it
    text = render(document.compile(), values, category="marketing", signature="【精信移动】").text
    # Then every figure in it is that subscriber's own
    for words in ("尊敬的女士", "畅享58套餐将于4月14日到期", "月均用流量500MB", "同比增长25%",
                  "通话50分钟", "月均消费58元", "比去年同期少2元", "推荐畅享38套餐",
                  "月费38元", "含5GB流量", "每月可省20.0元", "回复“XYP2”办理"):  # fmt: skip
        assert words in text, (words, text)


def test_without_a_year_earlier_the_plan_fit_sentence_is_sent(output) -> None:
    from jingxin.content.library import library_document
    from jingxin.content.templates import render

    row = by_subscriber(output)[2]
    document = library_document("care.plan_fit")
    text = render(document.compile(), {n: row[n] for n in document.variables},
                  category="marketing", signature=None).text  # fmt: skip
    assert "您的全球通39套餐合约将于4月14日到期" in text
    assert "按您近三个月平均用量，改用全球通59套餐，每月可省" in text
    assert "回复“XYQ3”即可办理" in text


def test_a_day_nobody_is_due_gives_nothing(warehouse) -> None:
    ctx = TriggerContext(warehouse=warehouse, day=DAY + dt.timedelta(days=2), settings=Settings())
    got = RENEWAL.candidates(ctx)
    assert (got.candidates.num_rows, dict(got.skipped)) == (0, {})


def test_renewal_days_before_is_read_from_the_settings(warehouse) -> None:
    # Given renewal 31 days before: subscriber 5's contract (2026-04-15) is due on DAY
    settings = Settings(journeys={"renewal_days_before": 31})
    got = RENEWAL.candidates(TriggerContext(warehouse=warehouse, day=DAY, settings=settings))
    assert [r["subscriber_id"] for r in got.candidates.to_pylist()] == [5]

"""The usage triggers on a hand-made warehouse: exactly who gets which kind on which day
(thresholds and surges on the day they are crossed, closed-month kinds and plan mismatch on
the subscriber's day of the month), the once-a-month keys, 100 % over 80 %, a lagging feed,
the subscriber's own figures in the rendered text, plan mismatch with the audience
recommendation, and skips by reason.

Day 2026-11-20: the current month is November (month to date, 20 days: yesterday is
estimated at 19/20 of today), the closed month October. A closed-month kind is told on the
subscriber's day of November, sid % 30 + 1: 7 on the 8th, 8 on the 9th, 20-22 on the
21st-23rd. Plans P1 (18 yuan, 1 GB, 100 min), P2 (38 yuan, 5 GB, 300 min), P3 (58 yuan,
10 GB, 500 min). Unless said otherwise a subscriber uses 60 % of both allowances every month
from August to November and pays the plan fee.

 1 P2, 4200 MB in Nov (82.0 %, 77.9 % yesterday)  → data_80
 2 P2, 5300 MB in Nov (103.5 %, 98.3 % yesterday) → data_100: 180 MB over, 5.40 yuan
 3 P2, 250 min in Nov (83.3 %, 79.2 % yesterday)  → voice_80
 4 P2, 5300 MB and 245 min in Nov (81.7 %)        → data_100 and voice_80
 5 P3, 1000 MB a month, 2050 MB in Nov (205 %, 195 % yesterday) → surge
 6 P3, 50 MB a month, 500 MB in Nov     → nothing: too little use to call a surge
 7 P3, 8000 MB in Sep, 1000 MB in Oct   → drop (October), on 8 November
 8 P2, October bill 80 yuan             → over_plan (42 yuan over), on 9 November
 9 P2, no November row                  → skipped no_usage
10 on plan PX the catalogue lacks       → skipped no_plan (both triggers)
11 churned, 5300 MB in Nov              → nothing
12 P2, exactly 5120 MB in Nov           → nothing: 80 % crossed days ago, the allowance
                                          reached, not passed (on the 2nd: data_80)
13 P2, 4400 MB in Nov (85.9 %, 81.6 % yesterday) → nothing: past 80 % since before
14 P3, 1000 MB a month, 2500 MB in Nov (250 %, 237 % yesterday) → nothing: surged before
20 P3, 500 MB / 50 min Aug-Oct, contract to 2027-01-31 → plan mismatch (under):
   care.plan_fit, "改用畅享38套餐，每月可省20.0元", XYP2
21 as 20, no contract                   → care.plan_mismatch
22 as 20, contract ended 2026-06-30     → care.plan_mismatch
23 P1, 100 MB / 10 min Aug-Oct          → under, but nothing cheaper: no_recommendation
24 P2, under from September only       → fits: nothing
25 P2, rows from October only           → plan mismatch skipped no_usage
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jingxin.config import JourneySettings, Settings
from jingxin.content.library import library_document
from jingxin.content.templates import render
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.journeys.trigger import TriggerContext, TriggerOutput
from jingxin.journeys.triggers import trigger
from jingxin.journeys.triggers.usage import PLAN_MISMATCH, USAGE

D = dt.date
DAY = D(2026, 11, 20)
AUG, SEP, OCT, NOV = (D(2026, m, 1) for m in (8, 9, 10, 11))

PLANS = [
    # id, name, tier, payment, fee, data, voice, sms, od, ov, os, contract, gen
    ("P1", "畅享18", 1, "prepaid", 18.0, 1024, 100, 50, 0.03, 0.15, 0.1, 0, 4),
    ("P2", "畅享38", 2, "prepaid", 38.0, 5120, 300, 100, 0.03, 0.15, 0.1, 0, 4),
    ("P3", "畅享58", 3, "prepaid", 58.0, 10240, 500, 100, 0.03, 0.15, 0.1, 0, 4),
]
ALLOWANCE = {p[0]: (p[5], p[6], p[4]) for p in PLANS}  # data, voice, fee
CONTRACTS = {20: D(2027, 1, 31), 22: D(2026, 6, 30)}
PLAN_OF = {5: "P3", 6: "P3", 7: "P3", 10: "PX", 14: "P3", 20: "P3", 21: "P3", 22: "P3",
           23: "P1"}  # fmt: skip
SUBSCRIBER_IDS = [*range(1, 15), *range(20, 26)]

# Departures from the quiet 60 %: (sid, month) -> (data MB, voice min, bill yuan)
SPECIAL: dict[tuple[int, dt.date], tuple[float | None, float | None, float | None]] = {
    (1, NOV): (4200.0, None, None), (2, NOV): (5300.0, None, None),
    (3, NOV): (None, 250.0, None), (4, NOV): (5300.0, 245.0, None),
    **{(5, m): (1000.0, None, None) for m in (AUG, SEP, OCT)}, (5, NOV): (2050.0, None, None),
    **{(6, m): (50.0, None, None) for m in (AUG, SEP, OCT)}, (6, NOV): (500.0, None, None),
    (7, SEP): (8000.0, None, None), (7, OCT): (1000.0, None, None),
    (7, NOV): (1000.0, None, None), (8, OCT): (None, None, 80.0),
    (11, NOV): (5300.0, None, None), (12, NOV): (5120.0, None, None),
    (13, NOV): (4400.0, None, None),
    **{(14, m): (1000.0, None, None) for m in (AUG, SEP, OCT)}, (14, NOV): (2500.0, None, None),
    **{(s, m): (500.0, 50.0, None) for s in (20, 21, 22) for m in (AUG, SEP, OCT, NOV)},
    **{(23, m): (100.0, 10.0, None) for m in (AUG, SEP, OCT, NOV)},
    **{(24, m): (1000.0, 100.0, None) for m in (SEP, OCT, NOV)},
}  # fmt: skip
MISSING = {(9, NOV), (25, AUG), (25, SEP)}


def subscriber(sid: int) -> tuple:
    plan = PLAN_OF.get(sid, "P2")
    status = "churned" if sid == 11 else "active"
    return (sid, f"+86138000000{sid:02d}", "china_mobile", plan, "prepaid", status, "F",
            D(1980, 1, 1), D(2015, 6, 1), CONTRACTS.get(sid), 3, "浦东新区", None, 5, False,
            None)  # fmt: skip


def usage_rows(special=SPECIAL, months=(AUG, SEP, OCT, NOV)) -> list[tuple]:
    rows = []
    for sid in SUBSCRIBER_IDS:
        plan = PLAN_OF.get(sid, "P2")
        data, voice, fee = ALLOWANCE.get(plan, (5120, 300, 38.0))
        for month in months:
            if (sid, month) in MISSING:
                continue
            d, v, b = special.get((sid, month), (None, None, None))
            # id, month, plan, data, voice, sms, bill, topups, topup yuan, roaming dom, intl
            rows.append((sid, month, plan, data * 0.6 if d is None else d,
                         voice * 0.6 if v is None else v, 5, fee if b is None else b,
                         0, 0.0, 0, 0))  # fmt: skip
    return rows


def table(name: str, rows: list[tuple]) -> pa.Table:
    schema = TABLES[name].schema
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                    schema=schema)


def warehouse(usage: list[tuple]):
    wh = open_duckdb(":memory:")
    wh.con.create_table("plans", table("plans", PLANS))
    wh.con.create_table("subscribers", table("subscribers",
                                             [subscriber(s) for s in SUBSCRIBER_IDS]))
    wh.con.create_table("usage_monthly", table("usage_monthly", usage), overwrite=True)
    return wh


def context(wh, day: dt.date = DAY, **journeys) -> TriggerContext:
    return TriggerContext(warehouse=wh, day=day,
                          settings=Settings(journeys=JourneySettings(**journeys)))


@pytest.fixture(scope="module")
def scan():
    """The usage trigger's output for a day of the hand-made warehouse (each day once)."""
    wh = warehouse(usage_rows())
    outputs: dict[dt.date, TriggerOutput] = {}

    def on(day: dt.date) -> TriggerOutput:
        if day not in outputs:
            outputs[day] = USAGE.candidates(context(wh, day))
        return outputs[day]

    yield on
    wh.close()


@pytest.fixture(scope="module")
def scanned(scan) -> TriggerOutput:
    return scan(DAY)


def their_day(sid: int, month: dt.date = NOV) -> dt.date:
    """The subscriber's day of the month for the closed-month kinds, worked out by hand."""
    return month.replace(day=sid % calendar.monthrange(month.year, month.month)[1] + 1)


def by_kind(candidates: pa.Table) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row in candidates.select(["kind", "subscriber_id"]).to_pylist():
        out.setdefault(row["kind"], []).append(row["subscriber_id"])
    return out


def row(candidates: pa.Table, sid: int, kind: str) -> dict:
    found = [r for r in candidates.to_pylist() if (r["subscriber_id"], r["kind"]) == (sid, kind)]
    assert len(found) == 1, found
    return found[0]


def rendered(candidate: dict) -> str:
    """The candidate's text, rendered by the content renderer from its template's own
    variables (the columns named like them)."""
    document = library_document(candidate["template"])
    assert document is not None, candidate["template"]
    values = {name: candidate[name] for name in document.variables}
    return render(document.compile(), values, category=document.category,
                  signature=None).text


# ----------------------------------------------------------------------------- usage


def test_exactly_the_expected_subscribers_per_kind(scanned) -> None:
    # Given the hand-made warehouse, When the usage trigger scans 2026-11-20
    # Then each kind names exactly the subscribers who crossed today: not 12 and 13, past
    # 80 % since before; not 14, surged before; not 11, churned; no closed-month kind, since
    # the 20th is no one's day of the month here
    assert by_kind(scanned.candidates) == {
        "data_80": [1], "data_100": [2, 4], "voice_80": [3, 4], "surge": [5],
    }
    assert scanned.skipped == {"no_usage": 1, "no_plan": 1}
    assert scanned.warning is None


def test_the_templates_and_keys_carry_kind_and_month(scan, scanned) -> None:
    assert row(scanned.candidates, 1, "data_80")["idempotency_key"] == (
        "journey:usage:data_80:2026-11:+8613800000001")
    # Drops and over-plan reminders are of the closed month, October
    assert row(scan(their_day(7)).candidates, 7, "drop")["idempotency_key"] == (
        "journey:usage:drop:2026-10:+8613800000007")
    both = pa.concat_tables([scanned.candidates, scan(their_day(7)).candidates,
                             scan(their_day(8)).candidates])  # fmt: skip
    templates = {(r["kind"], r["template"]) for r in both.to_pylist()}
    assert templates == {("data_80", "care.usage_near"), ("data_100", "care.usage_over"),
                         ("voice_80", "care.voice_near"), ("surge", "care.usage_surge"),
                         ("drop", "care.usage_drop"), ("over_plan", "care.over_plan")}
    keys = scanned.candidates.column("idempotency_key")
    assert len(pc.unique(keys)) == scanned.candidates.num_rows


def test_crossing_both_levels_on_one_day_is_told_100_not_80(scan) -> None:
    # Given the same figures read on the 2nd, when yesterday's estimate is half of today's
    got = scan(D(2026, 11, 2))
    # Then 2 (103.5 %, 51.8 % yesterday) crossed 80 % and 100 % today and hears 100 % only;
    # 12 reached its allowance without passing it: 80 %; 13 and 14 cross today too
    assert by_kind(got.candidates) == {
        "data_80": [1, 12, 13], "data_100": [2, 4], "voice_80": [3, 4], "surge": [5, 14],
    }
    assert [r["kind"] for r in got.candidates.to_pylist() if r["subscriber_id"] == 2] == [
        "data_100"]
    assert [s for s in ["已使用100%", "剩余0MB"]
            if s not in rendered(row(got.candidates, 12, "data_80"))] == []


def test_closed_month_kinds_are_told_on_the_subscribers_day(scan) -> None:
    # When the days around 7's and 8's days of November are scanned
    days = [D(2026, 11, d) for d in (1, 7, 8, 9, 10, 20, 30)]
    told = {(r["subscriber_id"], r["kind"], day) for day in days
            for r in scan(day).candidates.to_pylist() if r["kind"] in ("drop", "over_plan")}
    # Then each closed-month kind comes on the subscriber's own day only: sid % 30 + 1
    assert told == {(7, "drop", D(2026, 11, 8)), (8, "over_plan", D(2026, 11, 9))}
    assert (their_day(7), their_day(8)) == (D(2026, 11, 8), D(2026, 11, 9))
    # In a month of 31 days the same subscriber's day is the same arithmetic
    assert their_day(30, D(2026, 12, 1)) == D(2026, 12, 31)


@pytest.mark.parametrize(("day", "sid", "kind", "says"), [
    (DAY, 1, "data_80", ["截至11月20日", "已使用82%", "剩余920MB", "回复“KTLL10”",
                         "1GB流量包（10元）"]),
    (DAY, 2, "data_100", ["已超出套餐180MB", "产生费用5.40元", "回复“KTLL10”"]),
    (DAY, 3, "voice_80", ["通话已使用83%", "剩余50分钟", "回复“KTYY10”至10086",
                          "100分钟语音包（10元）"]),
    (DAY, 4, "voice_80", ["通话已使用81%", "剩余55分钟"]),
    (DAY, 5, "surge", ["本月已用流量2GB", "上月全月用量（1000MB）的205%", "回复“LL”至10086"]),
    (D(2026, 11, 8), 7, "drop", ["您10月使用流量1000MB", "上个月的7.8GB"]),
    (D(2026, 11, 9), 8, "over_plan", ["您10月话费80元", "畅享38套餐月费38元", "套餐外费用42元"]),
])  # fmt: skip
def test_the_text_carries_the_subscribers_own_figures(scan, day, sid, kind, says) -> None:
    # When the candidate is rendered by the content renderer
    text = rendered(row(scan(day).candidates, sid, kind))
    # Then it says that subscriber's figures
    assert [s for s in says if s not in text] == [], text


def test_settings_move_the_levels_and_ratios_and_the_hall_number() -> None:
    wh = warehouse(usage_rows())
    settings = {"usage_thresholds": [0.82, 1.0], "surge_ratio": 2.1, "drop_ratio": 0.1,
                "hall_number": "10010"}  # fmt: skip
    try:
        got = USAGE.candidates(context(wh, **settings))
        on_7s_day = USAGE.candidates(context(wh, their_day(7), **settings))
    finally:
        wh.close()
    # 82.0 %, 83.3 % and 85.9 % (81.6 % yesterday) cross 82 % today, 81.7 % does not;
    # 205 % is short of 210 %
    assert by_kind(got.candidates) == {"data_82": [1, 13], "data_100": [2, 4],
                                       "voice_82": [3]}  # fmt: skip
    assert "至10010" in rendered(row(got.candidates, 3, "voice_82"))
    # 12.5 % is no 10 % drop
    assert "drop" not in by_kind(on_7s_day.candidates)


def test_once_a_month_through_the_month() -> None:
    # Given subscriber 1 crossing 80 % on the 20th
    special = dict(SPECIAL)
    wh = warehouse(usage_rows(special))

    def feed(data_mb: float) -> None:
        special[(1, NOV)] = (data_mb, None, None)
        wh.con.create_table("usage_monthly", table("usage_monthly", usage_rows(special)),
                            overwrite=True)  # fmt: skip

    try:
        first = row(USAGE.candidates(context(wh)).candidates, 1, "data_80")
        # When the feed has 1 at 85.9 % on the 21st (81.8 % by yesterday's estimate)
        feed(4400.0)
        again = USAGE.candidates(context(wh, D(2026, 11, 21))).candidates
        # And at 103.5 % on the 25th (99.4 % by yesterday's estimate)
        feed(5300.0)
        later = USAGE.candidates(context(wh, D(2026, 11, 25))).candidates
    finally:
        wh.close()
    # Then the 21st has nothing for 1, who crossed before it, and the 25th brings the
    # 100 % message alone under a key of its own
    assert first["idempotency_key"] == "journey:usage:data_80:2026-11:+8613800000001"
    assert [r for r in again.to_pylist() if r["subscriber_id"] == 1] == []
    assert [r["kind"] for r in later.to_pylist() if r["subscriber_id"] == 1] == ["data_100"]
    assert row(later, 1, "data_100")["idempotency_key"] == (
        "journey:usage:data_100:2026-11:+8613800000001")


def test_a_lagging_feed_reads_its_latest_month_and_says_so() -> None:
    # Given a feed that has no December yet, When the scan runs on 5 December
    wh = warehouse(usage_rows())
    try:
        got = USAGE.candidates(context(wh, D(2026, 12, 5)))
    finally:
        wh.close()
    # Then November, a whole month with no crossing day to place, is read as a
    # once-a-month alert: everyone past a level, dated its last day, under November's keys
    assert by_kind(got.candidates) == {
        "data_80": [1, 12, 13], "data_100": [2, 4], "voice_80": [3, 4], "surge": [5, 14],
    }
    one = row(got.candidates, 1, "data_80")
    assert (one["as_of"], one["usage_month"]) == (D(2026, 11, 30), NOV)
    assert one["idempotency_key"] == "journey:usage:data_80:2026-11:+8613800000001"
    assert "2026-11" in got.warning and "2026-11-30" in got.warning
    # November is the closed month too; 5 December is 4's day (4 % 31 == 4), who has
    # neither a drop nor an overage in it, so no closed-month kind above


def test_no_usage_at_all_is_a_warning_not_an_error() -> None:
    wh = warehouse(usage_rows())
    try:
        got = USAGE.candidates(context(wh, D(2026, 7, 31)))
    finally:
        wh.close()
    assert got.candidates.num_rows == 0
    assert "no month on or before 2026-07-31" in got.warning


def test_the_registry_finds_both_triggers() -> None:
    assert trigger("usage") is USAGE and USAGE.name == "usage"
    assert trigger("plan_mismatch") is PLAN_MISMATCH and PLAN_MISMATCH.name == "plan_mismatch"


# ----------------------------------------------------------------------------- plan mismatch


@pytest.fixture(scope="module")
def mismatched():
    """The plan-mismatch trigger on 10's day of November and on the 20th to the 26th."""
    wh = warehouse(usage_rows())
    days = [their_day(10), *(D(2026, 11, d) for d in range(20, 27))]
    yield {day: PLAN_MISMATCH.candidates(context(wh, day)) for day in days}
    wh.close()


def test_three_months_of_mismatch_get_the_recommendation(mismatched) -> None:
    # Then each of 20, 21 and 22 is a candidate on their day of November alone
    told = {(r["subscriber_id"], day) for day, out in mismatched.items()
            for r in out.candidates.to_pylist()}
    assert told == {(20, their_day(20)), (21, their_day(21)), (22, their_day(22))}
    assert sorted(told) == [(20, D(2026, 11, 21)), (21, D(2026, 11, 22)),
                            (22, D(2026, 11, 23))]
    got = {r["subscriber_id"]: r for out in mismatched.values()
           for r in out.candidates.to_pylist()}
    assert {s: got[s]["template"] for s in got} == {
        20: "care.plan_fit", 21: "care.plan_mismatch", 22: "care.plan_mismatch"}
    assert got[20]["idempotency_key"] == "journey:plan_mismatch:2026-10:+8613800000020"
    assert {r["order_code"] for r in got.values()} == {"XYP2"}  # the renewal's code of plan P2
    # And the skipped are counted on their own days: 10 on the 11th, 23 on the 24th, 25 on
    # the 26th
    skipped = {day: dict(out.skipped) for day, out in mismatched.items() if out.skipped}
    assert skipped == {their_day(10): {"no_plan": 1},
                       their_day(23): {"no_recommendation": 1},
                       their_day(25): {"no_usage": 1}}  # fmt: skip


def test_the_mismatch_texts(mismatched) -> None:
    got = {r["subscriber_id"]: r for out in mismatched.values()
           for r in out.candidates.to_pylist()}
    fit = rendered(got[20])
    assert "畅享58套餐合约将于1月31日到期" in fit
    assert "按您近三个月平均用量，改用畅享38套餐，每月可省20.0元。" in fit
    assert "回复“XYP2”" in fit
    plain = rendered(got[22])
    assert "合约" not in plain and "近三个月的用量与畅享58套餐不太匹配" in plain


def test_mismatch_needs_a_closed_month() -> None:
    wh = warehouse(usage_rows(months=(NOV,)))
    try:
        got = PLAN_MISMATCH.candidates(context(wh))
    finally:
        wh.close()
    assert got.candidates.num_rows == 0 and "no month before 2026-11" in got.warning


# ----------------------------------------------------------------------------- delivery


def test_the_delivery_entry_takes_the_candidates_and_drops_a_days_repeat(tmp_path, migrated_sqlite) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store import open_store
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.dispatch.deliver import DeliveryContext, deliver_table

    # Given the approved starter library
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    codes = {"care.usage_near", "care.usage_over", "care.voice_near", "care.usage_surge",
             "care.usage_drop", "care.over_plan"}  # fmt: skip
    with store.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=[d for d in starter_library() if d.code in codes],
                             approve_as="reviewer", reviewer=None)  # fmt: skip
    wh = warehouse(usage_rows())

    def deliver(day: dt.date) -> tuple[int, Counter]:
        candidates = USAGE.candidates(context(wh, day)).candidates
        now = dt.datetime.combine(day, dt.time(2), dt.UTC)  # 10:00 in Shanghai
        queued, rejected = 0, Counter()
        # One table per template, extra columns (kind, usage_month, subscriber_id and the
        # other kinds' variables) left in: the delivery entry reads the template's own
        for code in sorted(set(candidates.column("template").to_pylist())):
            part = candidates.filter(pc.equal(candidates.column("template"), code))
            done = deliver_table(store, table=part, context=DeliveryContext.from_settings(
                Settings()), now=now, defaults={"source": "journey", "source_id": "usage",
                "tenant_id": "operator", "category": library_document(code).category})  # fmt: skip
            queued += done.accepted + done.deferred
            rejected.update(done.rejected)
        return queued, rejected

    try:
        # When the 20th is delivered, and the 21st finds the same figures (the feed has
        # not moved)
        first = deliver(DAY)
        again = deliver(D(2026, 11, 21))
    finally:
        wh.close()
        store.dispose()
    # Then the 20th's six crossings are queued, rendered, once; the same figures read on
    # the 21st still look crossed overnight, and come under the 20th's keys
    assert first == (6, Counter())
    assert again == (0, Counter({"duplicate": 6}))

"""The usage triggers on a hand-made warehouse: exactly who gets which kind, the
once-a-month keys, 100 % over 80 %, a lagging feed, the subscriber's own figures in the
rendered text, plan mismatch with the audience recommendation, and skips by reason.

Day 2026-11-20: the current month is November (month to date), the closed month October.
Plans P1 (18 yuan, 1 GB, 100 min), P2 (38 yuan, 5 GB, 300 min), P3 (58 yuan, 10 GB,
500 min). Unless said otherwise a subscriber uses 60 % of both allowances every month from
August to November and pays the plan fee.

 1 P2, 4400 MB in Nov (85.9 %)          → data_80
 2 P2, 5632 MB in Nov (110 %)           → data_100 only: 512 MB over, 15.36 yuan
 3 P2, 270 min in Nov (90 %)            → voice_80
 4 P2, 5632 MB and 240 min in Nov       → data_100 and voice_80
 5 P3, 1000 MB a month, 2500 MB in Nov  → surge (250 %)
 6 P3, 50 MB a month, 500 MB in Nov     → nothing: too little use to call a surge
 7 P3, 8000 MB in Sep, 1000 MB in Oct   → drop (October)
 8 P2, October bill 80 yuan             → over_plan (42 yuan over)
 9 P2, no November row                  → skipped no_usage
10 on plan PX the catalogue lacks       → skipped no_plan (both triggers)
11 churned, 117 % in Nov                → nothing
12 P2, exactly 5120 MB in Nov           → data_80 (the allowance reached, not passed)
20 P3, 500 MB / 50 min Aug-Oct, contract to 2027-01-31 → plan mismatch (under):
   care.plan_fit, "改用畅享38套餐，每月可省20.0元", TC038
21 as 20, no contract                   → care.plan_mismatch
22 as 20, contract ended 2026-06-30     → care.plan_mismatch
23 P1, 100 MB / 10 min Aug-Oct          → under, but nothing cheaper: no_recommendation
24 P2, under from September only       → fits: nothing
25 P2, rows from October only           → plan mismatch skipped no_usage
"""

from __future__ import annotations

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
from jingxin.journeys.trigger import TriggerContext
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
PLAN_OF = {5: "P3", 6: "P3", 7: "P3", 10: "PX", 20: "P3", 21: "P3", 22: "P3", 23: "P1"}
SUBSCRIBER_IDS = [*range(1, 13), *range(20, 26)]

# Departures from the quiet 60 %: (sid, month) -> (data MB, voice min, bill yuan)
SPECIAL: dict[tuple[int, dt.date], tuple[float | None, float | None, float | None]] = {
    (1, NOV): (4400.0, None, None), (2, NOV): (5632.0, None, None),
    (3, NOV): (None, 270.0, None), (4, NOV): (5632.0, 240.0, None),
    **{(5, m): (1000.0, None, None) for m in (AUG, SEP, OCT)}, (5, NOV): (2500.0, None, None),
    **{(6, m): (50.0, None, None) for m in (AUG, SEP, OCT)}, (6, NOV): (500.0, None, None),
    (7, SEP): (8000.0, None, None), (7, OCT): (1000.0, None, None),
    (7, NOV): (1000.0, None, None), (8, OCT): (None, None, 80.0),
    (11, NOV): (6000.0, None, None), (12, NOV): (5120.0, None, None),
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
def scanned():
    wh = warehouse(usage_rows())
    yield USAGE.candidates(context(wh))
    wh.close()


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
    # Then each kind names exactly its subscribers (11, churned, none at all)
    assert by_kind(scanned.candidates) == {
        "data_80": [1, 12], "data_100": [2, 4], "voice_80": [3, 4],
        "surge": [5], "drop": [7], "over_plan": [8],
    }
    assert scanned.skipped == {"no_usage": 1, "no_plan": 1}
    assert scanned.warning is None


def test_the_templates_and_keys_carry_kind_and_month(scanned) -> None:
    assert row(scanned.candidates, 1, "data_80")["idempotency_key"] == (
        "journey:usage:data_80:2026-11:+8613800000001")
    # Drops and over-plan reminders are of the closed month, October
    assert row(scanned.candidates, 7, "drop")["idempotency_key"] == (
        "journey:usage:drop:2026-10:+8613800000007")
    templates = {(r["kind"], r["template"]) for r in scanned.candidates.to_pylist()}
    assert templates == {("data_80", "care.usage_near"), ("data_100", "care.usage_over"),
                         ("voice_80", "care.voice_near"), ("surge", "care.usage_surge"),
                         ("drop", "care.usage_drop"), ("over_plan", "care.over_plan")}
    keys = scanned.candidates.column("idempotency_key")
    assert len(pc.unique(keys)) == scanned.candidates.num_rows


def test_past_100_percent_is_told_100_not_80(scanned) -> None:
    kinds = [r["kind"] for r in scanned.candidates.to_pylist() if r["subscriber_id"] == 2]
    assert kinds == ["data_100"]


@pytest.mark.parametrize(("sid", "kind", "says"), [
    (1, "data_80", ["截至11月20日", "已使用85%", "剩余720MB", "回复“KTLL10”", "1GB流量包（10元）"]),
    (12, "data_80", ["已使用100%", "剩余0MB"]),
    (2, "data_100", ["已超出套餐512MB", "产生费用15.36元", "回复“KTLL10”"]),
    (3, "voice_80", ["通话已使用90%", "剩余30分钟", "回复“KTYY10”至10086",
                     "100分钟语音包（10元）"]),
    (4, "voice_80", ["通话已使用80%", "剩余60分钟"]),
    (5, "surge", ["本月已用流量2.4GB", "上月全月用量（1000MB）的250%", "回复“LL”至10086"]),
    (7, "drop", ["您10月使用流量1000MB", "上个月的7.8GB"]),
    (8, "over_plan", ["您10月话费80元", "畅享38套餐月费38元", "套餐外费用42元"]),
])  # fmt: skip
def test_the_text_carries_the_subscribers_own_figures(scanned, sid, kind, says) -> None:
    # When the candidate is rendered by the content renderer
    text = rendered(row(scanned.candidates, sid, kind))
    # Then it says that subscriber's figures
    assert [s for s in says if s not in text] == [], text


def test_settings_move_the_levels_and_ratios_and_the_hall_number() -> None:
    wh = warehouse(usage_rows())
    try:
        got = USAGE.candidates(context(wh, usage_thresholds=[0.9, 1.0], surge_ratio=3.0,
                                       drop_ratio=0.1, hall_number="10010"))  # fmt: skip
    finally:
        wh.close()
    # 85.9 % and 80 % no longer cross; 250 % is no triple; 12.5 % is no 10 % drop
    assert by_kind(got.candidates) == {"data_90": [12], "data_100": [2, 4],
                                       "voice_90": [3], "over_plan": [8]}
    assert "至10010" in rendered(row(got.candidates, 3, "voice_90"))


def test_once_a_month_through_the_month() -> None:
    # Given subscriber 1 at 85.9 % on the 20th
    special = dict(SPECIAL)
    wh = warehouse(usage_rows(special))
    try:
        first = row(USAGE.candidates(context(wh)).candidates, 1, "data_80")
        # When the feed has 1 at 91.8 % on the 21st
        special[(1, NOV)] = (4700.0, None, None)
        wh.con.create_table("usage_monthly", table("usage_monthly", usage_rows(special)),
                            overwrite=True)  # fmt: skip
        again = row(USAGE.candidates(context(wh, D(2026, 11, 21))).candidates, 1, "data_80")
        # And at 103.5 % on the 25th
        special[(1, NOV)] = (5300.0, None, None)
        wh.con.create_table("usage_monthly", table("usage_monthly", usage_rows(special)),
                            overwrite=True)  # fmt: skip
        later = USAGE.candidates(context(wh, D(2026, 11, 25))).candidates
    finally:
        wh.close()
    # Then the 21st's candidate has the 20th's key (the delivery entry drops it), and the
    # 25th brings the 100 % message alone under a key of its own
    assert again["idempotency_key"] == first["idempotency_key"]
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
    # Then November is read, dated its last day, under November's keys
    one = row(got.candidates, 1, "data_80")
    assert (one["as_of"], one["usage_month"]) == (D(2026, 11, 30), NOV)
    assert one["idempotency_key"] == "journey:usage:data_80:2026-11:+8613800000001"
    assert "2026-11" in got.warning and "2026-11-30" in got.warning
    # November is the closed month too: no drop (7 is flat) and no overage in November
    assert "drop" not in by_kind(got.candidates)
    assert "over_plan" not in by_kind(got.candidates)


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
    wh = warehouse(usage_rows())
    yield PLAN_MISMATCH.candidates(context(wh))
    wh.close()


def test_three_months_of_mismatch_get_the_recommendation(mismatched) -> None:
    got = {r["subscriber_id"]: r for r in mismatched.candidates.to_pylist()}
    assert sorted(got) == [20, 21, 22]
    assert {s: got[s]["template"] for s in got} == {
        20: "care.plan_fit", 21: "care.plan_mismatch", 22: "care.plan_mismatch"}
    assert got[20]["idempotency_key"] == "journey:plan_mismatch:2026-10:+8613800000020"
    assert {r["order_code"] for r in got.values()} == {"TC038"}
    assert mismatched.skipped == {"no_plan": 1, "no_usage": 1, "no_recommendation": 1}


def test_the_mismatch_texts(mismatched) -> None:
    got = {r["subscriber_id"]: r for r in mismatched.candidates.to_pylist()}
    fit = rendered(got[20])
    assert "畅享58套餐合约将于1月31日到期" in fit
    assert "按您近三个月平均用量，改用畅享38套餐，每月可省20.0元。" in fit
    assert "回复“TC038”" in fit
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


def test_the_delivery_entry_takes_the_candidates_and_drops_a_days_repeat(tmp_path) -> None:
    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store import open_store
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.dispatch.deliver import DeliveryContext, deliver_table

    # Given the approved starter library
    store = open_store(f"sqlite:///{tmp_path / 'jx.db'}", upgrade=True)
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
        # When the 20th is delivered, and the 21st finds the same figures
        first = deliver(DAY)
        again = deliver(D(2026, 11, 21))
    finally:
        wh.close()
        store.dispose()
    # Then all nine are queued, rendered, once: the 21st's keys are the 20th's
    assert first == (9, Counter())
    assert again == (0, Counter({"duplicate": 9}))

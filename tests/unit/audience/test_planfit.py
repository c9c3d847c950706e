"""Plan fit on the tiny warehouse: the cheapest plan within one tier, and its sentence."""

from __future__ import annotations

import pytest
import tiny

from jingxin.audience.planfit import build_plan_fit, mismatch_report


@pytest.fixture(scope="module")
def fit(featured_shared):
    build_plan_fit(featured_shared, as_of=tiny.AS_OF)
    return featured_shared.table("plan_fit").to_pandas().set_index("subscriber_id")


@pytest.mark.parametrize(
    ("sid", "best", "saving", "mismatch"),
    [
        (1, "P2", 20.0, "under"),  # 500 MB on a 10 GB plan: one tier down saves the fee gap
        (2, "Q3", 75.68, "over"),  # 9.3 GB a month on 6 GB: overage dearer than a tier up
        (3, "Q3", 0.0, "fit"),
        (4, "P2", 2.5, "over"),  # 250 min on 100: 22.5 yuan overage vs 20 more fee
        (5, "Q3", 29.0, "under"),
    ],
)
def test_best_plan(fit, sid, best, saving, mismatch):
    row = fit.loc[sid]
    assert (row.best_plan_id, row.mismatch) == (best, mismatch)
    assert row.saving == pytest.approx(saving)


def test_tier_step_and_payment_are_kept(fit):
    # Q6 (tier 6) is never offered to a tier-3/4 subscriber; prepaid stays prepaid
    assert "Q6" not in set(fit.best_plan_id)
    assert set(fit.loc[[1, 4], "best_plan_id"]) <= {"P1", "P2", "P3"}


def test_messages(fit):
    assert fit.loc[1, "message"] == "按您近三个月平均用量，改用畅享38套餐，每月可省20.0元"
    assert fit.loc[2, "message"].endswith("改用全球通59套餐，每月可省75.7元")
    # 3 fits; the tier up costs 29 yuan more, above the 15-yuan extra-value limit
    assert fit.loc[3, "message"] is None or fit.loc[3, "message"] != fit.loc[3, "message"]


def test_extra_value_message_when_a_tier_up_costs_little(featured_shared):
    from jingxin.audience.planfit import PlanFitParams, plan_fit_expr

    df = plan_fit_expr(featured_shared, as_of=tiny.AS_OF,
                       params=PlanFitParams(max_extra=30.0)).to_pandas()
    msg = df.set_index("subscriber_id").loc[3, "message"]
    assert msg == "按您近三个月平均用量，每月多付29.0元改用全球通88套餐，可多得20GB流量、500分钟通话"


def test_report_groups_mismatches_by_plan(fit, featured_shared):
    report = mismatch_report(featured_shared, as_of=tiny.AS_OF).to_pandas()
    assert sorted(zip(report.plan_id, report.mismatch)) == [
        ("P1", "over"), ("P3", "under"), ("Q2", "over"), ("Q4", "under")]
    assert report.subscribers.sum() == 4


@pytest.mark.parametrize(("extra", "says"), [
    (4.3, "每月多付4.3元改用"), (0.04, "每月不多付钱改用"), (-0.03, "每月不多付钱改用"),
])
def test_a_tier_up_that_costs_nothing_more_says_so(extra, says):
    # Given a subscriber whose saving is too small to tell and a tier up costing `extra`
    import ibis

    from jingxin.audience.planfit import PlanFitParams, _message

    t = ibis.memtable({"saving": [0.03], "extra": [extra], "best_plan_name": ["轻享19"],
                       "up_plan_name": ["轻享19"], "up_data_mb": [4096],
                       "current_data_mb": [1024], "up_voice_min": [100],
                       "current_voice_min": [50]})
    # When the renewal sentence is written
    msg = t.select(m=_message(t, PlanFitParams())).to_pandas().m[0]
    # Then it never says "pay -0.0 yuan more"
    assert msg == f"按您近三个月平均用量，{says}轻享19套餐，可多得3GB流量、50分钟通话"

"""The small run looks like an operator: mixes, shares and habits within plausible bands."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def test_population_mix(tables):
    subs = tables("subscribers")
    prepaid = (subs.payment == "prepaid").mean()
    assert 0.12 < prepaid < 0.40
    as_of = pd.Timestamp("2026-10-01")
    age = (as_of - pd.to_datetime(subs.birthday.dropna())).dt.days / 365.25
    assert age.min() >= 15.9 and age.max() < 86.1
    tenure = (as_of - pd.to_datetime(subs.entry_date)).dt.days
    assert tenure.min() >= 1 and tenure.max() <= 20 * 366
    assert (tenure < 183).mean() > 0.02 and (tenure > 10 * 365).mean() > 0.05
    assert subs.star_level.between(0, 7).all() and subs.star_level.nunique() >= 6
    assert subs.region.nunique() == 16
    # Older subscribers keep older handsets
    old = age.reindex(subs.index) > 65
    gen = subs.handset_generation
    assert (gen[old] <= 4).mean() > (gen[~old & age.reindex(subs.index).notna()] <= 4).mean()


def test_star_level_follows_bill(tables):
    subs, usage = tables("subscribers"), tables("usage_monthly")
    arpu = usage.groupby("subscriber_id").bill.mean()
    merged = subs.set_index("subscriber_id").join(arpu)
    assert merged.star_level.corr(merged.bill, method="spearman") > 0.3


def test_usage_follows_plans_with_over_and_under_users(tables):
    usage, plans = tables("usage_monthly"), tables("plans")
    assert usage.month.nunique() == 6
    assert usage.month.max() == dt.date(2026, 9, 1)
    u = usage.merge(plans[["plan_id", "data_mb"]].rename(columns={"data_mb": "allow"}),
                    on="plan_id")
    ratio = (u.data_mb / u.allow).groupby(u.subscriber_id).median()
    assert 0.05 < (ratio > 1.0).mean() < 0.30  # chronic over-users
    assert 0.10 < (ratio < 0.5).mean() < 0.50  # paying for more than they use
    # Usage scales with the plan: dearer tiers carry more data
    per_tier = u.merge(plans[["plan_id", "tier"]], on="plan_id").groupby("tier").data_mb.mean()
    assert per_tier.is_monotonic_increasing or per_tier.corr(pd.Series(per_tier.index,
                                                                       per_tier.index)) > 0.9


def test_plan_changes_and_prepaid_topups_show(tables):
    usage = tables("usage_monthly")
    changes = usage.groupby("subscriber_id").plan_id.nunique()
    assert (changes > 1).sum() > 10
    prepaid = tables("subscribers").query("payment == 'prepaid'").subscriber_id
    u = usage[usage.subscriber_id.isin(prepaid) & (usage.topup_count > 0)]
    small = (u.topup_amount / u.topup_count) < 30
    assert 0.1 < small.mean() < 0.9
    assert (usage[~usage.subscriber_id.isin(prepaid)].topup_count == 0).all()


def test_roaming_peaks_in_the_summer(tables):
    usage = tables("usage_monthly")
    by_month = usage.groupby("month").roaming_days_domestic.mean()
    assert by_month[dt.date(2026, 7, 1)] > by_month[dt.date(2026, 6, 1)]
    assert (usage.roaming_days_international > 0).mean() > 0.005


def test_nights_are_spent_at_home(tables):
    events = tables("location_events")
    events = events[events.country == "CN"]
    hour = events.ts.dt.hour
    night = events[(hour >= 21) | (hour < 7)]
    top = night.groupby(["subscriber_id", "cell_id"]).size().groupby("subscriber_id").agg(
        ["max", "sum"])
    assert (top["max"] / top["sum"]).mean() > 0.8
    weekday_office = events[(events.ts.dt.day_of_week < 5) & hour.between(9, 17)]
    per_sub = weekday_office.groupby("subscriber_id").size()
    assert per_sub.median() > 10
    per_day = events.groupby([events.subscriber_id, events.ts.dt.date]).size()
    assert 15 < per_day.median() < 25


def test_airports_and_abroad_appear(tables):
    events, cells = tables("location_events"), tables("cells")
    airport = cells[cells.kind == "airport"].cell_id
    assert events.cell_id.isin(airport).any()
    assert (events.country != "CN").any()
    assert set(cells.kind) >= {"residential", "business", "airport", "rail", "hall"}
    assert cells.lat.between(30.6, 31.9).all() and cells.lon.between(120.8, 122.0).all()


def test_bundles_go_together(tables):
    h = tables("holdings")
    held = pd.crosstab(h.subscriber_id, h.product_id.str[:2]) > 0
    with_bb = held[held.BB].TV.mean()
    without_bb = held[~held.BB].TV.mean()
    assert with_bb > 5 * max(without_bb, 0.01)


def test_complaints_are_rare_and_contacts_common(tables):
    n = len(tables("subscribers"))
    complaints, contacts = tables("complaints"), tables("channel_contacts")
    assert complaints.subscriber_id.nunique() / n < 0.12
    assert (complaints.category == "marketing_sms").any()
    assert contacts.subscriber_id.nunique() / n > 0.8
    assert set(contacts.channel) == {"hall", "app", "web", "hotline", "sms_hall"}

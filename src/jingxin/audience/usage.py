"""Usage-based features from ``usage_monthly``: ARPU, averages, product preference,
usage trend, value tier, plan fit and handset fit.

All windows are whole months before the as-of date (see :mod:`jingxin.audience.window`);
"last three months" are the three months before ``as_of``'s month.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from jingxin.audience.window import AsOf


@dataclass(frozen=True)
class UsageParams:
    """Thresholds of the usage features (documented in docs/audience.md)."""

    preference_ratio: float = 1.5  # data share this many times the voice share → data-heavy
    surge_ratio: float = 1.5  # last month >= 1.5 x previous three months' average → surge
    drop_ratio: float = 0.5  # last month <= 0.5 x that average → drop
    value_bands: tuple[float, float] = (50.0, 120.0)  # ARPU yuan: low < 50 <= mid < 120 <= high
    under_share: float = 0.5  # under-use: below half of both allowances
    heavy_data_mb: float = 8192.0  # heavy data user: >= 8 GB a month on average
    old_handset_max_generation: int = 4  # 4G or older counts as an older handset


def _monthly(usage: ir.Table, start, end) -> ir.Table:
    return usage.filter((usage.month >= start) & (usage.month < end))


def usage_summary(*, usage: ir.Table, plans: ir.Table, window: AsOf,
                  params: UsageParams) -> ir.Table:
    """Per subscriber, in one pass over six months of usage: arpu (last 3 months),
    arpu_prev (the 3 before), the last-3-month averages and top-ups, usage_trend,
    plan_fit and the downgrade signal of price sensitivity. One scan with conditional
    aggregates, not one per feature: at ten million subscribers the usage table is the
    biggest thing the feature build reads, and a window over it (``lag`` of the tier, as
    the downgrade signal once was) sorts all of it."""
    from jingxin.audience.sensitivity import downgrade

    m = window.months_back
    p = plans.select("plan_id", "tier", allow_data=plans.data_mb,
                     allow_voice=plans.voice_min)
    u = usage.filter((usage.month >= m(5)) & (usage.month < m(-1)))
    u = u.left_join(p, "plan_id")
    in3, prev3 = u.month >= m(2), u.month < m(2)
    last, before = u.month == m(0), (u.month >= m(3)) & (u.month < m(0))
    known = in3 & u.allow_data.notnull()
    over = known & ((u.data_mb > u.allow_data) | (u.voice_min > u.allow_voice))
    under = known & (u.data_mb < u.allow_data * params.under_share) & (
        u.voice_min < u.allow_voice * params.under_share)

    def total(cond: ir.BooleanValue, value: ir.Value) -> ir.Value:
        return ibis.ifelse(cond, value, 0).sum()

    counts = {"last_n": last, "before_n": before, "fit_months": known,
              "over_months": over, "under_months": under}
    g = u.group_by("subscriber_id").aggregate(
        arpu=total(in3, u.bill) / 3.0, arpu_prev=total(prev3, u.bill) / 3.0,
        data_mb_3m=total(in3, u.data_mb) / 3.0, voice_min_3m=total(in3, u.voice_min) / 3.0,
        sms_3m=total(in3, u.sms).cast("float64") / 3.0,
        topup_count_3m=total(in3, u.topup_count).cast("int64"),
        topup_amount_3m=total(in3, u.topup_amount),
        last_data=total(last, u.data_mb), before_data=total(before, u.data_mb),
        packed_counts=_packed(counts.values()).sum(),
        **{f"tier_{k}": _tier_in(u, m(k), m(k - 1)) for k in range(6)},
    )
    g = g.mutate(**_unpacked(g.packed_counts, counts))
    prev_avg = g.before_data / ibis.greatest(g.before_n, 1)
    seen = (g.last_n > 0) & (g.before_n > 0) & (prev_avg > 0)
    trend = ibis.cases(
        (seen & (g.last_data >= prev_avg * params.surge_ratio), "surge"),
        (seen & (g.last_data <= prev_avg * params.drop_ratio), "drop"),
        else_="stable",
    )
    fit = ibis.cases(
        (g.fit_months < 3, "unknown"),
        (g.over_months >= 3, "over"),
        (g.under_months >= 3, "under"),
        else_="fit",
    )
    tiers = [f"tier_{k}" for k in range(6)]
    return g.mutate(usage_trend=trend, plan_fit=fit,
                    downgrade=downgrade([g[c] for c in tiers])).drop(
        "last_data", "last_n", "before_data", "before_n", "fit_months", "over_months",
        "under_months", "packed_counts", *tiers)


# Month counts per subscriber travel packed in one integer sum, a base-1000 digit each:
# one aggregate instead of five over the whole usage table. A subscriber has at most six
# rows in the window (one per month: the table's key), far below a digit's 999.
_BASE = 1000


def _packed(conds) -> ir.IntegerValue:
    value = ibis.literal(0, "int64")
    for k, cond in enumerate(conds):
        value = value + ibis.ifelse(cond, _BASE**k, 0)
    return value


def _unpacked(packed: ir.IntegerValue, names) -> dict[str, ir.IntegerValue]:
    return {name: (packed // _BASE**k) % _BASE for k, name in enumerate(names)}


def _tier_in(u: ir.Table, start, end) -> ir.Value:
    """The tier of the plan held in the month ``[start, end)`` (null: no row, or a plan
    missing from the catalogue). A month pivot: six of these replace a window."""
    return ibis.ifelse((u.month >= start) & (u.month < end), u.tier,
                       ibis.null(u.tier.type())).max()


def preference(averages: ir.Table, params: UsageParams) -> ir.Table:
    """data_heavy / voice_heavy / balanced: each share relative to the population mean."""
    # Means over an empty window: one pass over the rows, where a cross join with an
    # aggregate would read the (large) input twice.
    everyone = ibis.window()
    t = averages.mutate(pop_data=averages.data_mb_3m.mean().over(everyone),
                        pop_voice=averages.voice_min_3m.mean().over(everyone))
    ds = t.data_mb_3m / ibis.greatest(t.pop_data, 1.0)
    vs = t.voice_min_3m / ibis.greatest(t.pop_voice, 1.0)
    r = params.preference_ratio
    pref = (ibis.cases((ds > vs * r, "data_heavy"), (vs > ds * r, "voice_heavy"),
                       else_="balanced"))
    return t.mutate(product_preference=pref).drop("pop_data", "pop_voice")


def plan_fit(*, usage: ir.Table, plans: ir.Table, window: AsOf,
             params: UsageParams) -> ir.Table:
    """over / under / fit over the last three months against the plan held each month;
    'unknown' with fewer than three months."""
    last3 = _monthly(usage, window.months_back(2), window.months_back(-1))
    p = plans.select(plans.plan_id, allow_data=plans.data_mb, allow_voice=plans.voice_min)
    j = last3.inner_join(p, "plan_id")
    over = (j.data_mb > j.allow_data) | (j.voice_min > j.allow_voice)
    under = (j.data_mb < j.allow_data * params.under_share) & (
        j.voice_min < j.allow_voice * params.under_share)
    g = j.group_by("subscriber_id").aggregate(
        months=j.count(),
        over_months=over.cast("int64").sum(),
        under_months=under.cast("int64").sum(),
    )
    label = ibis.cases(
        (g.months < 3, "unknown"),
        (g.over_months >= 3, "over"),
        (g.under_months >= 3, "under"),
        else_="fit",
    )
    return g.select("subscriber_id", plan_fit=label)


def value_tier(arpu: ir.Value, params: UsageParams) -> ir.Value:
    lo, hi = params.value_bands
    return ibis.cases((arpu < lo, "low"), (arpu < hi, "mid"), else_="high")


def handset_upgrade(data_mb_3m: ir.Value, generation: ir.Value,
                    params: UsageParams) -> ir.Value:
    return ((data_mb_3m >= params.heavy_data_mb)
            & (generation <= params.old_handset_max_generation)).fill_null(False)


def tenure_months(entry_date: ir.Value, window: AsOf) -> ir.Value:
    """Whole months from network entry to as_of (year/month/day parts: both engines)."""
    d = window.day
    months = (d.year * 12 + d.month) - (entry_date.year() * 12 + entry_date.month())
    return (months - (entry_date.day() > d.day).cast("int32")).cast("int32")


def tenure_group(months: ir.Value) -> ir.Value:
    return ibis.cases((months < 6, "under_6m"), (months <= 12, "6_12m"), else_="over_12m")

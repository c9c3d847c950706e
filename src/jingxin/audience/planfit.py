"""Plan fit and recommendation, vectorised in the warehouse.

For every subscriber with three months of usage before ``as_of``: the expected monthly
cost of their average usage (data, voice, SMS) on every catalogue plan of the same payment
type within one tier of theirs (monthly fee + overage at the plan's tariffs), the cheapest
such plan (a cross join of subscribers × candidate plans and an argmin), and a sentence a
renewal SMS can use:

* saving ≥ ``min_saving`` → ``按您近三个月平均用量，改用畅享38套餐，每月可省20.0元``;
* otherwise, if the plan one tier up costs at most ``max_extra`` more → the extra value:
  ``按您近三个月平均用量，每月多付4.3元改用全球通59套餐，可多得14GB流量、200分钟通话``;
* otherwise no message (the current plan is the right one).

``mismatch`` is the usage-based fit (over / under / fit over three consecutive months,
see :mod:`jingxin.audience.usage`); the report groups mismatched subscribers by plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis

from jingxin.audience.source import read
from jingxin.audience.usage import UsageParams, plan_fit
from jingxin.audience.window import AsOf

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.data.warehouse.connection import Warehouse


@dataclass(frozen=True)
class PlanFitParams:
    min_saving: float = 1.0  # yuan a month worth telling the subscriber about
    max_extra: float = 15.0  # most yuan a month an "extra value" offer may add
    tier_step: int = 1


def monthly_cost(t: ir.Table) -> ir.FloatingValue:
    """Fee plus overage of average usage (columns avg_*) on the plan columns c_*."""
    over_data = ibis.greatest(t.avg_data - t.c_data_mb, 0) * t.c_overage_data_per_mb
    over_voice = ibis.greatest(t.avg_voice - t.c_voice_min, 0) * t.c_overage_voice_per_min
    over_sms = ibis.greatest(t.avg_sms - t.c_sms, 0) * t.c_overage_sms
    return t.c_monthly_fee + over_data + over_voice + over_sms


def _averages(usage: ir.Table, w: AsOf) -> ir.Table:
    u = usage.filter((usage.month >= w.months_back(2)) & (usage.month < w.months_back(-1)))
    g = u.group_by("subscriber_id").aggregate(
        months=u.count(), avg_data=u.data_mb.mean(), avg_voice=u.voice_min.mean(),
        avg_sms=u.sms.cast("float64").mean())
    return g.filter(g.months == 3).drop("months")


def _pick(t: ir.Table, key: ir.IntegerValue, prefix: str) -> ir.Table:
    """Per subscriber, the candidate with the smallest ``key``: one hash aggregation of
    arg-mins (no window over tens of millions of rows: that sort was most of the time)."""
    g = t.group_by("subscriber_id").aggregate(**{
        f"{prefix}_plan_id": t.c_plan_id.argmin(key),
        f"{prefix}_plan_name": t.c_name.argmin(key),
        f"{prefix}_cost": t.cost.argmin(key),
        f"{prefix}_data_mb": t.c_data_mb.argmin(key),
        f"{prefix}_voice_min": t.c_voice_min.argmin(key),
    })
    return g


def _order_key(t: ir.Table, *, by_fee: bool) -> ir.IntegerValue:
    """One integer that sorts like (cost, [monthly fee,] catalogue order): costs and fees
    are whole fen (cost < 10^7 fen, fee < 10^6 fen) and the catalogue has < 1000 plans."""
    cost = (t.cost * 100).round(0).cast("int64")
    key = cost * 1_000_000_000
    if by_fee:
        key = key + (t.c_monthly_fee * 100).round(0).cast("int64") * 1_000
    return key + t.c_rank


def candidates(*, subscribers: ir.Table, plans: ir.Table, averages: ir.Table,
               params: PlanFitParams) -> ir.Table:
    """One row per (subscriber, candidate plan) with ``cost``; the current plan is one."""
    cur = subscribers.select("subscriber_id", "plan_id").inner_join(averages, "subscriber_id")
    cur = cur.inner_join(plans.select("plan_id", cur_tier=plans.tier,
                                      cur_payment=plans.payment), "plan_id")
    ranked = plans.mutate(rank=ibis.row_number().over(order_by=plans.plan_id))  # tiny table
    c = ranked.rename({f"c_{n}": n for n in ranked.columns})
    pairs = cur.inner_join(
        c, [cur.cur_payment == c.c_payment,
            c.c_tier >= cur.cur_tier - params.tier_step,
            c.c_tier <= cur.cur_tier + params.tier_step])
    return pairs.mutate(cost=monthly_cost(pairs).round(2))


def _plan_words(name: ir.StringValue) -> ir.StringValue:
    """A plan's name as a renewal SMS says it: catalogue names mostly carry 套餐 already."""
    return ibis.ifelse(name.contains("套餐"), name, name + "套餐")


def _message(t: ir.Table, params: PlanFitParams) -> ir.StringValue:
    head = ibis.literal("按您近三个月平均用量，")
    save = head + "改用" + _plan_words(t.best_plan_name) + "，每月可省" + t.saving.round(1).cast(
        "string") + "元"
    more_gb = ((t.up_data_mb - t.current_data_mb) / 1024).round(0).cast("int64")
    more_min = (t.up_voice_min - t.current_voice_min).cast("int64")
    extra = (head + "每月多付" + t.extra.round(1).cast("string") + "元改用" + _plan_words(t.up_plan_name)
             + "，可多得" + more_gb.cast("string") + "GB流量、" + more_min.cast("string")
             + "分钟通话")
    return ibis.cases(
        (t.saving >= params.min_saving, save),
        (t.extra.notnull() & (t.extra <= params.max_extra), extra),
        else_=ibis.null("string"),
    )


def plan_fit_expr(warehouse: Warehouse, *, as_of: dt.date,
                  params: PlanFitParams | None = None) -> ir.Table:
    """The plan-fit table: current vs best plan, saving, the up-tier option, message."""
    params = params or PlanFitParams()
    w = AsOf(as_of)
    subs, plans = read(warehouse, "subscribers"), read(warehouse, "plans")
    usage = read(warehouse, "usage_monthly")
    pairs = candidates(subscribers=subs, plans=plans, averages=_averages(usage, w),
                       params=params)
    # The held plan is one row per subscriber: no ranking needed.
    held = pairs.filter(pairs.c_plan_id == pairs.plan_id)
    current = held.select("subscriber_id", current_plan_id=held.c_plan_id,
                          current_plan_name=held.c_name, current_cost=held.cost,
                          current_data_mb=held.c_data_mb, current_voice_min=held.c_voice_min)
    best = _pick(pairs, _order_key(pairs, by_fee=True), "best")
    ups = pairs.filter(pairs.c_tier == pairs.cur_tier + 1)
    up = _pick(ups, _order_key(ups, by_fee=False), "up")
    t = current.inner_join(best, "subscriber_id").left_join(up, "subscriber_id")
    t = t.drop(*[c for c in t.columns if c.endswith("_right")])
    fit = plan_fit(usage=usage, plans=plans, window=w, params=UsageParams())
    t = t.left_join(fit, "subscriber_id").drop("subscriber_id_right")
    t = t.mutate(saving=(t.current_cost - t.best_cost).round(2),
                 extra=(t.up_cost - t.current_cost).round(2))
    return t.select(
        "subscriber_id", as_of=ibis.literal(as_of, "date"),
        plan_id=t.current_plan_id, current_cost=t.current_cost,
        mismatch=t.plan_fit.fill_null("unknown"),
        best_plan_id=t.best_plan_id, best_cost=t.best_cost, saving=t.saving,
        up_plan_id=t.up_plan_id, up_extra=t.extra, message=_message(t, params),
    )


def build_plan_fit(warehouse: Warehouse, *, as_of: dt.date,
                   params: PlanFitParams | None = None) -> int:
    """Store the plan-fit table (``plan_fit``) for ``as_of``; return its row count."""
    from jingxin.audience.store import replace_partition

    return replace_partition(warehouse, table="plan_fit",
                             expr=plan_fit_expr(warehouse, as_of=as_of, params=params),
                             key="as_of", value=as_of)


def mismatch_report(warehouse: Warehouse, *, as_of: dt.date) -> ir.Table:
    """Mismatched subscribers by plan: how many over/under, how many could save, mean
    saving, the most common recommended plan."""
    t = warehouse.table("plan_fit")
    t = t.filter((t.as_of == as_of) & t.mismatch.isin(["over", "under"]))
    return t.group_by(["plan_id", "mismatch"]).aggregate(
        subscribers=t.count(),
        with_saving=(t.saving >= PlanFitParams().min_saving).cast("int64").sum(),
        mean_saving=t.saving.mean().round(2),
        top_recommendation=t.best_plan_id.mode(),
    ).order_by([ibis.desc("subscribers"), "plan_id", "mismatch"])

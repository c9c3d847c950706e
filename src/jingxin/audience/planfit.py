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

from collections.abc import Callable

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


def _decode(t: ir.Table, ranked: ir.Table, prefix: str) -> ir.Table:
    """Columns of the plan a ``{prefix}_key`` won: the key's low digits are the plan's
    catalogue rank and its high digits the cost in fen (see :func:`_order_key`). Picking
    the minimum integer key and decoding it is a plain ``min`` per subscriber; arg-mins of
    string columns over tens of millions of pairs were most of the time."""
    key = t[f"{prefix}_key"]
    t = t.mutate(**{f"{prefix}_rank": key % RANKS,
                    f"{prefix}_cost": (key // COST_UNIT).cast("float64") / 100})
    plan = ranked.select(**{f"{prefix}_rank_p": ranked.rank,
                            f"{prefix}_plan_id": ranked.plan_id,
                            f"{prefix}_plan_name": ranked.name,
                            f"{prefix}_data_mb": ranked.data_mb,
                            f"{prefix}_voice_min": ranked.voice_min})
    t = t.left_join(plan, t[f"{prefix}_rank"] == plan[f"{prefix}_rank_p"])
    return t.drop(f"{prefix}_rank", f"{prefix}_rank_p", f"{prefix}_key")


RANKS = 1_000  # the catalogue has fewer plans than this
COST_UNIT = 1_000_000_000  # key = cost in fen * COST_UNIT + fee in fen * RANKS + rank


def _order_key(t: ir.Table, *, by_fee: bool) -> ir.IntegerValue:
    """One integer that sorts like (cost, [monthly fee,] catalogue order) and can be
    decoded back (:func:`_decode`): costs and fees are whole fen (cost < 10^7 fen, fee <
    10^6 fen, so the key stays below 2^63)."""
    cost = (t.cost * 100).round(0).cast("int64")
    key = cost * COST_UNIT
    if by_fee:
        key = key + (t.c_monthly_fee * 100).round(0).cast("int64") * RANKS
    return key + t.c_rank


def ranked_plans(plans: ir.Table) -> ir.Table:
    """The catalogue with each plan's rank in plan_id order (0, 1, ...)."""
    return plans.mutate(rank=ibis.row_number().over(order_by=plans.plan_id))


def candidate_map(plans: ir.Table, params: PlanFitParams) -> ir.Table:
    """(plan_id, candidate plan c_*): every catalogue plan of the same payment type within
    ``tier_step`` tiers of it, itself included. Catalogue-sized (plans²), so subscribers
    reach their candidates through a plain equi-join on plan_id instead of a range join
    over tens of millions of rows."""
    ranked = ranked_plans(plans)
    c = ranked.rename({f"c_{n}": n for n in ranked.columns})
    held = plans.select("plan_id", cur_tier=plans.tier, cur_payment=plans.payment)
    m = held.inner_join(
        c, [held.cur_payment == c.c_payment,
            c.c_tier >= held.cur_tier - params.tier_step,
            c.c_tier <= held.cur_tier + params.tier_step])
    return m.drop("cur_payment")


def candidates(*, subscribers: ir.Table, plans: ir.Table, averages: ir.Table,
               params: PlanFitParams) -> ir.Table:
    """One row per (subscriber, candidate plan) with ``cost``; the current plan is one."""
    cur = subscribers.select("subscriber_id", "plan_id").inner_join(averages, "subscriber_id")
    pairs = cur.inner_join(candidate_map(plans, params), "plan_id")
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
    # A tier up that costs nothing more (its fee covers overage the current plan charges)
    # is said so: "多付-0.0元" would be nonsense, and engines print a negative zero
    # differently (DuckDB "-0.0", Spark "0.0").
    pay = ibis.cases((t.extra.round(1) <= 0, "不多付钱"),
                     else_="多付" + t.extra.round(1).cast("string") + "元")
    extra = (head + "每月" + pay + "改用" + _plan_words(t.up_plan_name)
             + "，可多得" + more_gb.cast("string") + "GB流量、" + more_min.cast("string")
             + "分钟通话")
    return ibis.cases(
        (t.saving >= params.min_saving, save),
        (t.extra.notnull() & (t.extra <= params.max_extra), extra),
        else_=ibis.null("string"),
    )


def plan_fit_expr(warehouse: Warehouse, *, as_of: dt.date,
                  params: PlanFitParams | None = None,
                  only: Callable[[ir.Value], ir.BooleanValue] | None = None) -> ir.Table:
    """The plan-fit table: current vs best plan, saving, the up-tier option, message.

    ``only`` (a predicate on ``subscriber_id``) restricts it to some subscribers at the
    source reads, so the aggregations run over their rows only (the daily scan's share of
    the month: 1/30 of the work)."""
    params = params or PlanFitParams()
    w = AsOf(as_of)
    subs, plans = read(warehouse, "subscribers"), read(warehouse, "plans")
    usage = read(warehouse, "usage_monthly")
    if only is not None:
        subs, usage = subs.filter(only(subs.subscriber_id)), usage.filter(only(usage.subscriber_id))
    pairs = candidates(subscribers=subs, plans=plans, averages=_averages(usage, w),
                       params=params)
    # One aggregation gives the held plan, the cheapest candidate and the cheapest one a
    # tier up (the held plan is exactly one pair per subscriber).
    held = pairs.c_plan_id == pairs.plan_id
    t = pairs.group_by("subscriber_id").aggregate(
        current_key=_order_key(pairs, by_fee=False).min(where=held),
        best_key=_order_key(pairs, by_fee=True).min(),
        up_key=_order_key(pairs, by_fee=False).min(where=pairs.c_tier == pairs.cur_tier + 1),
    )
    t = t.filter(t.current_key.notnull())
    ranked = ranked_plans(plans)
    for prefix in ("current", "best", "up"):
        t = _decode(t, ranked, prefix)
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

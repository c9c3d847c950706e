"""Plan renewal: ``[journeys] renewal_days_before`` days before a contract ends, the
subscriber's own usage and the plan the audience code recommends.

Who: active subscribers whose ``contract_end`` is the scan's day plus
``renewal_days_before``. What they get, all computed in the warehouse for those
subscribers alone (a contract ends on a given day for a few thousand of ten million, so
the plan fit and the usage figures read only their rows - :class:`SubscriberView`):

* their figures from ``usage_monthly`` for the last three whole months before the day:
  average data (MB) and voice (minutes) a month, average bill; and the same three months
  a year earlier: data year on year (a fraction) and the bill's change (yuan);
* the recommendation of :func:`jingxin.audience.planfit.plan_fit_expr` (the cheapest plan
  within a tier, or the tier up when it costs little more): the plan's name, fee and data,
  and what it offers them (``每月可省20.0元`` or ``每月多付4.3元，可多得14GB流量、200分钟
  通话``), with the SMS-hall order code ``XY`` + the plan id's letters and digits.

They get ``care.plan_renewal``. A subscriber with no usage a year earlier (on the network
for less than that, or a warehouse that keeps fewer months) has no year-on-year figure,
and the template states one: they get ``care.plan_fit`` instead - the same
recommendation, in the plan-fit sentence, without the comparison. Skipped: ``no_usage``
(not three months of usage before the day: no plan fit) and ``no_recommendation`` (the
current plan is already the right one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.audience.window import AsOf, add_months
from jingxin.data.warehouse.connection import Warehouse
from jingxin.journeys.trigger import TriggerContext, TriggerOutput
from jingxin.journeys.triggers.lifecycle import salutation

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["RENEWAL", "RenewalTrigger", "SubscriberView", "order_code", "usage_figures"]

RENEWAL_TEMPLATE = "care.plan_renewal"
FALLBACK_TEMPLATE = "care.plan_fit"
RENEWAL_VARIABLES = ("name", "plan_name", "expiry", "avg_data_mb", "data_yoy", "avg_voice_min",
                     "avg_fee", "fee_change", "rec_plan", "rec_fee", "rec_data_mb", "offer",
                     "order_code")  # fmt: skip
FALLBACK_VARIABLES = ("plan_name", "expiry", "advice", "order_code")
ORDER_PREFIX = "XY"  # 续约: the SMS-hall code that orders a plan is XY + the plan id


@dataclass
class SubscriberView(Warehouse):
    """The warehouse as a few subscribers see it: every table keyed by ``subscriber_id``
    holds only the rows of the subscribers in ``ids``. Code written for the whole
    warehouse (the plan fit) runs unchanged on the few, at the cost of the few."""

    ids: Any = field(default=None, kw_only=True)  # an Ibis table with a subscriber_id column

    @classmethod
    def of(cls, warehouse: Warehouse, ids: ir.Table) -> SubscriberView:
        return cls(con=warehouse.con, backend=warehouse.backend, ids=ids)

    def table(self, name: str) -> ir.Table:
        table = super().table(name)
        if "subscriber_id" not in table.columns:
            return table
        return table.semi_join(self.ids, "subscriber_id")


def order_code(plan_id: ir.StringValue) -> ir.StringValue:
    """The SMS-hall code ordering ``plan_id``: ``XY`` and the id's letters and digits (a
    template ``code`` is 2-12 of them)."""
    return ibis.literal(ORDER_PREFIX) + plan_id.re_replace("[^A-Za-z0-9]", "").substr(0, 10)


def _window(usage: ir.Table, start: date, end: date, prefix: str) -> ir.Table:
    """Per subscriber, the monthly averages of the three months ``[start, end)``; only
    subscribers with all three months (a partial window would skew the comparison)."""
    u = usage.filter((usage.month >= start) & (usage.month < end))
    g = u.group_by("subscriber_id").aggregate(
        months=u.count(), **{f"{prefix}data": u.data_mb.mean(),
                             f"{prefix}voice": u.voice_min.mean(),
                             f"{prefix}fee": u.bill.mean()})  # fmt: skip
    return g.filter(g.months == 3).drop("months")


def usage_figures(usage: ir.Table, *, as_of: date) -> ir.Table:
    """Per subscriber with three months of usage before ``as_of``: ``avg_data_mb``,
    ``avg_voice_min`` (whole numbers), ``avg_fee`` (yuan, 2 decimals), and - with the same
    three months a year earlier - ``data_yoy`` (a fraction: 0.32 is 32% more) and
    ``fee_change`` (yuan); both null without a year-earlier window."""
    w = AsOf(as_of)
    start, end = w.months_back(2), w.months_back(-1)
    now = _window(usage, start, end, "")
    before = _window(usage, add_months(start, -12), add_months(end, -12), "ly_")
    t = now.left_join(before, "subscriber_id").drop("subscriber_id_right")
    data_yoy = ibis.ifelse(t.ly_data > 0, (t.data / t.ly_data - 1).round(4),
                           ibis.null("float64"))  # fmt: skip
    return t.select(
        "subscriber_id",
        avg_data_mb=t.data.round(0).cast("int64"), avg_voice_min=t.voice.round(0).cast("int64"),
        avg_fee=t.fee.round(2), data_yoy=data_yoy,
        fee_change=(t.fee.round(2) - t.ly_fee.round(2)).round(2),
    )  # fmt: skip


def _plan_words(name: ir.StringValue) -> ir.StringValue:
    """A plan's name as a message says it: catalogue names mostly carry 套餐 already."""
    return ibis.ifelse(name.contains("套餐"), name, name + "套餐")


def _offer(t: ir.Table, min_saving: float) -> ir.StringValue:
    """What the recommended plan gives this subscriber, in their own figures."""
    more_gb = ((t.rec_data_mb - t.cur_data_mb) / 1024).round(0).cast("int64").cast("string")
    more_min = (t.rec_voice_min - t.cur_voice_min).cast("int64").cast("string")
    pay = ibis.ifelse(t.up_extra.round(1) <= 0, "每月不多付钱",
                      "每月多付" + t.up_extra.round(1).cast("string") + "元")  # fmt: skip
    extra = pay + "，可多得" + more_gb + "GB流量、" + more_min + "分钟通话"
    return ibis.ifelse(t.saving >= min_saving,
                       "每月可省" + t.saving.round(1).cast("string") + "元", extra)  # fmt: skip


def renewal_table(ctx: TriggerContext) -> ir.Table:
    """Every subscriber due for renewal on ``ctx.day``, with their plan fit and figures
    (null where they have none): one row each."""
    from jingxin.audience.planfit import PlanFitParams, plan_fit_expr
    from jingxin.audience.source import read

    params = PlanFitParams()
    ends = ctx.day + timedelta(days=ctx.settings.journeys.renewal_days_before)
    subs = read(ctx.warehouse, "subscribers",
                columns=("subscriber_id", "msisdn", "status", "gender", "plan_id",
                         "contract_end"))  # fmt: skip
    due = subs.filter((subs.status == "active") & (subs.contract_end == ends))
    view = SubscriberView.of(ctx.warehouse, due.select("subscriber_id"))
    fit = plan_fit_expr(view, as_of=ctx.day, params=params)
    fit = fit.select("subscriber_id", "saving", "up_extra", "message",
                     rec_plan_id=ibis.ifelse(fit.saving >= params.min_saving,
                                             fit.best_plan_id, fit.up_plan_id))  # fmt: skip
    figures = usage_figures(read(view, "usage_monthly"), as_of=ctx.day)
    plans = read(ctx.warehouse, "plans")
    current = plans.select(cur_plan_id=plans.plan_id, plan_name=plans.name,
                           cur_data_mb=plans.data_mb, cur_voice_min=plans.voice_min)  # fmt: skip
    recommended = plans.select(rec_id=plans.plan_id, rec_name=plans.name,
                               rec_fee=plans.monthly_fee, rec_data_mb=plans.data_mb,
                               rec_voice_min=plans.voice_min)  # fmt: skip
    t = (due.left_join(fit, "subscriber_id").drop("subscriber_id_right")
         .left_join(figures, "subscriber_id").drop("subscriber_id_right"))  # fmt: skip
    t = t.left_join(current, t.plan_id == current.cur_plan_id)
    t = t.left_join(recommended, t.rec_plan_id == recommended.rec_id)
    return t.select(
        "msisdn", "subscriber_id", name=salutation(t.gender), plan_name=_plan_words(t.plan_name),
        expiry=t.contract_end, avg_data_mb=t.avg_data_mb, data_yoy=t.data_yoy,
        avg_voice_min=t.avg_voice_min, avg_fee=t.avg_fee, fee_change=t.fee_change,
        rec_plan=_plan_words(t.rec_name), rec_fee=t.rec_fee, rec_data_mb=t.rec_data_mb,
        offer=_offer(t, params.min_saving), order_code=order_code(t.rec_plan_id),
        advice=t.message, has_usage=t.saving.notnull(),
    ).order_by("subscriber_id")  # fmt: skip


def _split(due: pa.Table) -> TriggerOutput:
    """The due subscribers as candidates (with a year-on-year figure: the renewal
    template; without: the plan-fit one) and the skipped, by reason."""
    has_usage = pc.fill_null(due.column("has_usage"), False)
    has_advice = pc.and_(has_usage, pc.is_valid(due.column("advice")))
    with_yoy = pc.and_(pc.is_valid(due.column("data_yoy")), pc.is_valid(due.column("fee_change")))
    renewal = due.filter(pc.and_(has_advice, with_yoy))
    fallback = due.filter(pc.and_(has_advice, pc.invert(with_yoy)))
    parts = [t.select(["msisdn", "subscriber_id", *variables])
             .append_column("template", pa.repeat(pa.scalar(code), t.num_rows))
             for t, code, variables in ((renewal, RENEWAL_TEMPLATE, RENEWAL_VARIABLES),
                                        (fallback, FALLBACK_TEMPLATE, FALLBACK_VARIABLES))]  # fmt: skip
    output = TriggerOutput(candidates=pa.concat_tables(parts, promote_options="default"))
    no_usage = due.num_rows - (pc.sum(has_usage).as_py() or 0)
    no_recommendation = (pc.sum(has_usage).as_py() or 0) - (pc.sum(has_advice).as_py() or 0)
    for reason, n in (("no_usage", no_usage), ("no_recommendation", no_recommendation)):
        if n:
            output.skipped[reason] = n
    return output


@dataclass(frozen=True)
class RenewalTrigger:
    """The renewal message with the subscriber's own usage and a recommended plan."""

    name: str = "renewal"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        return _split(renewal_table(ctx).to_pyarrow())


RENEWAL = RenewalTrigger()

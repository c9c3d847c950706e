"""The usage triggers of the daily scan: allowance thresholds, month-on-month surges and
drops and over-plan reminders (:data:`USAGE`), and three months of plan mismatch
(:data:`PLAN_MISMATCH`).

Which months a scan as of day D reads
-------------------------------------
``usage_monthly`` has one row per subscriber and month; the row of the month in progress
holds the month so far. Two months of the feed matter:

* the *current* month: the latest month on or before D - D's own, or an earlier one when
  the feed lags. Thresholds and surges read it. The candidates' ``as_of`` is D, or the
  lagging month's last day, so a text never dates figures to a day the feed has not reached.
* the *closed* month: the latest month before D's month. Drops and over-plan reminders
  read it: a month in progress always looks like a drop, and its bill is not the bill yet.
  Plan mismatch reads the three months up to it (the audience plan-fit window).

Told on the day, not every day
------------------------------
The feed is monthly figures, so a subscriber past 80 % on the 12th is still past it on every
later day of the month. Offering them every day would hand the delivery entry the month's
whole crowd daily, to be dropped as duplicates (on the synthetic operator that was seven
candidates a day for every ten subscribers). Each kind therefore has a day of its own:

* thresholds and surges: the day they are *crossed*. The month so far as of D covers
  ``d`` days (D's day of the month); yesterday's figure is estimated linearly as
  ``used * (d - 1) / d``, and a subscriber is a candidate when today's figure has crossed a
  level that yesterday's had not (the 1st crosses from nothing). Of the levels crossed
  today only the highest is told: past 100 % and 80 % on one day, they hear 100 %.
* drops, over-plan reminders and plan mismatch, which read a closed month: a day of the
  month spread by subscriber id, ``subscriber_id % days_in_month(D) == day_of_month(D) - 1``,
  so a thirtieth of them each day rather than all on the 1st (the load is the point).
* a lagging feed (the current month is an earlier one, so its row is a whole month): no
  day of crossing can be placed, so thresholds and surges take everyone past the level, as
  a once-a-month alert would. A feed a day or two late at a month's start brings the
  month's crowd once more, mostly duplicates; the scan's warning says the feed lags.

The scheduler scans each missed day when it catches up, so no crossing day and no spread
day is skipped. Keys still make every kind once a month whatever the days: a candidate's
key is ``journey:usage:<kind>:<YYYY-MM>:<msisdn>`` with the month its figures are of, so
a day scanned again, a crossing estimated on two days, or a lagging month re-read sends
nothing new. Thresholds are kinds per level (``data_80``, ``data_100``): told about 80 %
on the 20th, a subscriber is told about 100 % the day they pass it.

Everything is one Ibis expression per question (DuckDB or PySpark), never a Python loop
over subscribers; who is left out is counted by reason (``no_usage``: no row in the month
read; ``no_plan``: a plan the catalogue does not have).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from jingxin.audience.planfit import PlanFitParams, _plan_words, plan_fit_expr
from jingxin.audience.source import read
from jingxin.audience.window import add_months, month_start
from jingxin.errors import ConfigError
from jingxin.journeys.trigger import TriggerContext, TriggerOutput
from jingxin.journeys.triggers.renewal import order_code

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.config import JourneySettings
    from jingxin.data.warehouse.connection import Warehouse

NAME = "尊敬的客户"  # the warehouse knows no names
PACKS = {"data": "LL10", "voice": "YY10"}  # hall catalogue products the alerts offer
TEMPLATES = {("data", False): "care.usage_near", ("data", True): "care.usage_over",
             ("voice", False): "care.voice_near", ("voice", True): "care.voice_over"}  # fmt: skip
# A month-on-month change is told only from a month of at least this much use: 10 MB
# becoming 30 MB is no surge anyone needs to hear about.
MIN_BASE_MB = 100.0
MIN_OVERAGE = 1.0  # yuan above the plan fee worth an over-plan reminder

# Every template variable the usage kinds fill, with its type: each kind's rows carry all
# of them (null where its template has no such variable) so the kinds are one table.
VARIABLES: dict[str, str] = {
    "name": "string", "as_of": "date", "used_share": "float64", "remaining_mb": "int64",
    "remaining_min": "int64", "over_mb": "int64", "over_min": "int64", "over_fee": "float64",
    "pack_name": "string", "pack_price": "float64", "pack_code": "string",
    "hall_number": "string", "data_mb": "int64", "prev_data_mb": "int64", "ratio": "float64",
    "month": "int64", "plan_name": "string", "plan_fee": "float64", "bill": "float64",
    "overage": "float64",
}  # fmt: skip
HEAD = {"msisdn": "string", "subscriber_id": "int64", "template": "string", "kind": "string",
        "usage_month": "date", "idempotency_key": "string"}  # fmt: skip


@dataclass(frozen=True)
class FeedMonths:
    """The months of ``usage_monthly`` a scan as of ``day`` reads (first days)."""

    day: dt.date
    current: dt.date  # the latest month on or before day
    closed: dt.date | None  # the latest month before day's month (None: the feed has none)

    @property
    def as_of(self) -> dt.date:
        """The day the current month's figures run to: the scan's day, or the last day of
        a month the feed has not moved past."""
        if self.current == month_start(self.day):
            return self.day
        last = calendar.monthrange(self.current.year, self.current.month)[1]
        return self.current.replace(day=last)

    @property
    def yesterday(self) -> float | None:
        """The share of the current month's figures estimated reached the day before:
        ``(d - 1) / d`` with ``d`` the days the month so far covers (linear use); None when
        the feed lags and the row is a whole month with no crossing day to place."""
        if self.current != month_start(self.day):
            return None
        return (self.day.day - 1) / self.day.day


def their_day(subscriber_id: ir.IntegerValue, day: dt.date) -> ir.BooleanValue:
    """Whether ``day`` is the subscriber's day of the month for the kinds read from a closed
    month: ``subscriber_id % days_in_month(day) == day_of_month(day) - 1``. Every
    subscriber has exactly one such day in every month and each day has an even share of
    them, so the month's advice is spread over the month instead of all sent on the 1st."""
    length = calendar.monthrange(day.year, day.month)[1]
    return (subscriber_id % length) == day.day - 1


def feed_months(usage: ir.Table, day: dt.date) -> FeedMonths | None:
    """The current and the closed month of the feed for a scan as of ``day``; None when
    the feed has no month on or before it."""
    u = usage.filter(usage.month <= day)
    row = u.aggregate(current=u.month.max(),
                      closed=u.month.max(where=u.month < month_start(day))).to_pyarrow()
    found = row.to_pylist()[0] if row.num_rows else {}
    current = _date(found.get("current"))
    return None if current is None else FeedMonths(day, current, _date(found.get("closed")))


def _date(value: Any) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


@dataclass(frozen=True)
class Pack:
    """A hall product an alert offers: what the subscriber replies, its name and price."""

    code: str  # "KT" + product id: the hall's order command
    name: str
    price: float  # yuan a month, list price


def pack(product_id: str) -> Pack:
    """The product ``product_id`` of the hall's packaged catalogue; a ConfigError when the
    catalogue has no such product."""
    from jingxin.hall.seed import DEFAULT_CATALOGUE, load_catalogue

    for product in load_catalogue():
        if product.product_id == product_id:
            return Pack(f"KT{product_id}", product.name, product.monthly_fee_fen / 100)
    raise ConfigError(f"{DEFAULT_CATALOGUE}: no product {product_id!r}, which the usage "
                      "alerts offer (jingxin.journeys.triggers.usage.PACKS)")  # fmt: skip


# ----------------------------------------------------------------------------- usage


@dataclass(frozen=True)
class UsageTrigger:
    """Thresholds, surges, drops and over-plan reminders (module docstring)."""

    name: str = "usage"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        wh = ctx.warehouse
        usage = read(wh, "usage_monthly", columns=("subscriber_id", "month", "plan_id",
                                                   "data_mb", "voice_min", "bill"))  # fmt: skip
        months = feed_months(usage, ctx.day)
        if months is None:
            return TriggerOutput(_empty(), warning=f"usage_monthly has no month on or before "
                                                   f"{ctx.day}: no usage alerts")  # fmt: skip
        w = usage_table(subscribers=read(wh, "subscribers"), usage=usage,
                        plans=read(wh, "plans"), months=months)  # fmt: skip
        kinds = usage_candidates(w, months=months, settings=ctx.settings.journeys)
        warning = (None if months.current == month_start(ctx.day)
                   else f"usage_monthly reaches {months.current:%Y-%m} only: alerts "
                        f"as of {months.as_of}")  # fmt: skip
        return TriggerOutput(kinds.to_pyarrow(), skipped=_skipped(w), warning=warning)


def usage_table(*, subscribers: ir.Table, usage: ir.Table, plans: ir.Table,
                months: FeedMonths) -> ir.Table:
    """One row per active subscriber: the current month's use and plan (with its allowances
    and overage tariffs), last month's data, and the closed month's data, bill and plan
    beside the data of the month before it. One pass over the (at most four) months read,
    a conditional aggregate per figure."""
    cur, closed = months.current, months.closed
    u = usage.filter(usage.month.isin(_months_read(months)))

    def at(month: dt.date, column: str) -> ir.Value:
        return u[column].max(where=u.month == month)  # one row per subscriber and month

    figures = {"plan_id": at(cur, "plan_id"), "data": at(cur, "data_mb"),
               "voice": at(cur, "voice_min"), "prev_data": at(add_months(cur, -1), "data_mb")}
    if closed is not None:
        figures |= {"closed_data": at(closed, "data_mb"), "closed_bill": at(closed, "bill"),
                    "closed_plan": at(closed, "plan_id"),
                    "before_data": at(add_months(closed, -1), "data_mb")}  # fmt: skip
    g = u.group_by(u.subscriber_id.name("sid")).aggregate(**figures)
    s = subscribers.filter(subscribers.status == "active").select("subscriber_id", "msisdn")
    w = s.left_join(g, s.subscriber_id == g.sid).drop("sid")
    p = plans.select(cur_plan=plans.plan_id, allow_data=plans.data_mb,
                     allow_voice=plans.voice_min, rate_data=plans.overage_data_per_mb,
                     rate_voice=plans.overage_voice_per_min)  # fmt: skip
    w = w.left_join(p, w.plan_id == p.cur_plan)
    if closed is not None:
        c = plans.select(closed_plan_id=plans.plan_id, closed_plan_name=plans.name,
                         closed_fee=plans.monthly_fee)  # fmt: skip
        w = w.left_join(c, w.closed_plan == c.closed_plan_id)
    return w


def _months_read(months: FeedMonths) -> list[dt.date]:
    cur, closed = months.current, months.closed
    read_ = {cur, add_months(cur, -1)}
    if closed is not None:
        read_ |= {closed, add_months(closed, -1)}
    return sorted(read_)


def usage_candidates(w: ir.Table, *, months: FeedMonths,
                     settings: JourneySettings) -> ir.Table:
    """Every usage kind's candidates, one table (ordered by subscriber and kind)."""
    closed = months.closed
    kinds = [surges(w, months=months, settings=settings)]
    if settings.usage_thresholds:
        kinds += [thresholds(w, measure="data", used=w.data, allowance=w.allow_data,
                             rate=w.rate_data, months=months, settings=settings),
                  thresholds(w, measure="voice", used=w.voice, allowance=w.allow_voice,
                             rate=w.rate_voice, months=months, settings=settings)]  # fmt: skip
    if closed is not None:
        today = w.filter(their_day(w.subscriber_id, months.day))
        kinds += [drops(today, month=closed, settings=settings),
                  over_plan(today, month=closed, settings=settings)]
    return ibis.union(*kinds).order_by(["subscriber_id", "kind"])


def thresholds(w: ir.Table, *, measure: str, used: ir.NumericValue,
               allowance: ir.NumericValue, rate: ir.NumericValue, months: FeedMonths,
               settings: JourneySettings) -> ir.Table:
    """The highest level of ``settings.usage_thresholds`` each subscriber's use crossed on
    the scan's day (module docstring; any level passed, when the feed lags), with the near
    or over text's figures. A level below 1 is passed at that share of the allowance; the
    allowance itself (1 and above) only when use exceeds it, since the over text tells the
    excess."""
    share = used / allowance
    known = allowance.notnull() & (allowance > 0) & used.notnull()

    def passed(value: ir.NumericValue, level: float) -> ir.BooleanValue:
        return (value > level) if level >= 1 else (value >= level)

    def crossed(level: float) -> ir.BooleanValue:
        today = known & passed(share, level)
        if months.yesterday is None:
            return today
        return today & ~passed(share * months.yesterday, level)

    levels = sorted(set(settings.usage_thresholds), reverse=True)
    level = ibis.cases(*((crossed(x), x) for x in levels), else_=ibis.null("float64"))
    t = w.mutate(level=level, share=share, used=used, allowance=allowance, rate=rate)
    t = t.filter(t.level.notnull())
    over = t.level >= 1
    kind = ibis.cases(*((t.level == x, f"{measure}_{round(x * 100)}") for x in levels))
    template = ibis.ifelse(over, TEMPLATES[(measure, True)], TEMPLATES[(measure, False)])
    excess = t.used - t.allowance
    unit = "mb" if measure == "data" else "min"
    offered = pack(PACKS[measure])

    def near(value: ir.Value) -> ir.Value:
        return ibis.ifelse(over, ibis.null(value.type()), value)

    def beyond(value: ir.Value) -> ir.Value:
        return ibis.ifelse(over, value, ibis.null(value.type()))

    values = {
        "as_of": months.as_of,
        # Shares and what is left round down: 99.6 % is not yet "100 %" used. Percent as
        # used * 100 / allowance: (used / allowance) * 100 floors 2050 / 1000 to 204.
        "used_share": near((t.used * 100 / t.allowance).floor() / 100.0),
        f"remaining_{unit}": near((t.allowance - t.used).floor().cast("int64")),
        f"over_{unit}": beyond(excess.ceil().cast("int64")),
        "over_fee": beyond((excess * t.rate).round(2)),
        "pack_name": offered.name, "pack_price": offered.price, "pack_code": offered.code,
        "hall_number": settings.hall_number if measure == "voice" else None,
    }
    return _rows(t, template=template, kind=kind, month=months.current, values=values)


def surges(w: ir.Table, *, months: FeedMonths, settings: JourneySettings) -> ir.Table:
    """This month's data so far at least ``surge_ratio`` times last month's whole month
    since the scan's day: yesterday's estimate was still short of it (when the feed lags:
    at least that much, whatever the day)."""
    ratio = w.data / w.prev_data
    surged = (w.prev_data >= MIN_BASE_MB) & (ratio >= settings.surge_ratio)
    if months.yesterday is not None:
        surged &= ratio * months.yesterday < settings.surge_ratio
    t = w.filter(surged)
    values = {"as_of": months.as_of, "data_mb": t.data.round().cast("int64"),
              "prev_data_mb": t.prev_data.round().cast("int64"),
              "ratio": (t.data * 100 / t.prev_data).floor() / 100.0,
              "hall_number": settings.hall_number}  # fmt: skip
    return _rows(t, template="care.usage_surge", kind="surge", month=months.current,
                 values=values)


def drops(w: ir.Table, *, month: dt.date, settings: JourneySettings) -> ir.Table:
    """The closed month's data at most ``drop_ratio`` times the month before it (``w``: the
    subscribers whose day of the month it is)."""
    t = w.filter((w.before_data >= MIN_BASE_MB)
                 & (w.closed_data <= w.before_data * settings.drop_ratio))
    values = {"month": month.month, "data_mb": t.closed_data.round().cast("int64"),
              "prev_data_mb": t.before_data.round().cast("int64"),
              "hall_number": settings.hall_number}  # fmt: skip
    return _rows(t, template="care.usage_drop", kind="drop", month=month, values=values)


def over_plan(w: ir.Table, *, month: dt.date, settings: JourneySettings) -> ir.Table:
    """The closed month's bill at least :data:`MIN_OVERAGE` above its plan's fee (``w``:
    the subscribers whose day of the month it is)."""
    t = w.filter(w.closed_bill - w.closed_fee >= MIN_OVERAGE)
    values = {"month": month.month, "bill": t.closed_bill.round(2),
              "plan_name": _plan_words(t.closed_plan_name), "plan_fee": t.closed_fee,
              "overage": (t.closed_bill - t.closed_fee).round(2),
              "hall_number": settings.hall_number}  # fmt: skip
    return _rows(t, template="care.over_plan", kind="over_plan", month=month, values=values)


def _rows(t: ir.Table, *, template: str | ir.Value, kind: str | ir.Value, month: dt.date,
          values: dict[str, Any]) -> ir.Table:
    """A kind's candidate rows in the one column layout of :data:`HEAD` + :data:`VARIABLES`."""
    kind = ibis.literal(kind) if isinstance(kind, str) else kind
    key = "journey:usage:" + kind + f":{month:%Y-%m}:" + t.msisdn
    columns: dict[str, Any] = {
        "msisdn": t.msisdn, "subscriber_id": t.subscriber_id,
        "template": ibis.literal(template) if isinstance(template, str) else template,
        "kind": kind, "usage_month": ibis.literal(month), "idempotency_key": key,
    }  # fmt: skip
    values = {"name": NAME, **values}
    for name, dtype in VARIABLES.items():
        value = values.get(name)
        columns[name] = (ibis.null(dtype) if value is None else ibis.literal(value)
                         if not isinstance(value, ibis.Expr) else value)  # fmt: skip
    schema = {**HEAD, **VARIABLES}
    return t.select(**{n: v.cast(schema[n]) for n, v in columns.items()})


def _skipped(w: ir.Table) -> Counter[str]:
    """Active subscribers the usage kinds could not look at, by reason."""
    row = w.aggregate(
        no_usage=w.plan_id.isnull().cast("int64").sum(),
        no_plan=(w.plan_id.notnull() & w.cur_plan.isnull()).cast("int64").sum(),
    ).to_pyarrow().to_pylist()[0]
    return Counter({reason: n for reason, n in row.items() if n})


def _empty() -> pa.Table:
    return ibis.schema({**HEAD, **VARIABLES}).to_pyarrow().empty_table()


# ----------------------------------------------------------------------------- plan mismatch

MISMATCH_HEAD = {"msisdn": "string", "subscriber_id": "int64", "template": "string",
                 "idempotency_key": "string", "mismatch": "string", "plan_name": "string",
                 "expiry": "date", "advice": "string", "order_code": "string"}  # fmt: skip


@dataclass(frozen=True)
class PlanMismatchTrigger:
    """Three months in a row over or under the plan (the audience plan fit) → the plan-fit
    recommendation: ``care.plan_fit`` when a contract runs to an end on or after the day
    (its text names that end), ``care.plan_mismatch`` otherwise. Each subscriber is looked
    at on their day of the month (:func:`their_day`), skips counted then too; once a month:
    the key carries the last of the three months."""

    name: str = "plan_mismatch"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        wh = ctx.warehouse
        usage = read(wh, "usage_monthly", columns=("subscriber_id", "month"))
        months = feed_months(usage, ctx.day)
        if months is None or months.closed is None:
            empty = ibis.schema(MISMATCH_HEAD).to_pyarrow().empty_table()
            return TriggerOutput(empty, warning=f"usage_monthly has no month before "
                                 f"{ctx.day:%Y-%m}: no plan-mismatch advice")  # fmt: skip
        # The day's share is small: computed once in the warehouse, then read twice (the
        # candidates, the skips) without running the plan fit again.
        t = ibis.memtable(mismatch_table(wh, closed=months.closed, day=ctx.day).to_pyarrow())
        wanted = t.filter(t.mismatch.isin(["over", "under"]) & t.message.notnull())
        return TriggerOutput(mismatch_candidates(wanted, day=ctx.day, closed=months.closed)
                             .to_pyarrow(), skipped=_mismatch_skipped(t))  # fmt: skip


def mismatch_table(warehouse: Warehouse, *, closed: dt.date, day: dt.date) -> ir.Table:
    """Every active subscriber whose day of the month ``day`` is (:func:`their_day`) beside
    their plan fit over the three months up to ``closed``
    (:func:`jingxin.audience.planfit.plan_fit_expr` as of the month after it; its columns
    null when it has no answer) and the recommended plan (``rec_plan``)."""
    subs = read(warehouse, "subscribers")
    plans = read(warehouse, "plans")
    fit = plan_fit_expr(warehouse, as_of=add_months(closed, 1),
                        only=lambda sid: their_day(sid, day))
    # Filtered on both sides so that the plan fit is computed for the day's share only.
    fit = fit.filter(their_day(fit.subscriber_id, day))
    s = subs.filter((subs.status == "active") & their_day(subs.subscriber_id, day))
    s = s.select("subscriber_id", "msisdn", "plan_id", "contract_end")
    f = fit.select(fit_sid=fit.subscriber_id, mismatch=fit.mismatch, message=fit.message,
                   saving=fit.saving, best_plan_id=fit.best_plan_id, up_plan_id=fit.up_plan_id)
    t = s.left_join(f, s.subscriber_id == f.fit_sid)
    held = plans.select(held_id=plans.plan_id, held_name=plans.name)
    t = t.left_join(held, t.plan_id == held.held_id)
    # The plan the advice names: the saving's when it is worth telling, else the tier up
    # (the order of jingxin.audience.planfit's sentence).
    rec = ibis.cases((t.saving >= PlanFitParams().min_saving, t.best_plan_id),
                     else_=t.up_plan_id)
    return t.mutate(rec_plan=rec)


def mismatch_candidates(t: ir.Table, *, day: dt.date, closed: dt.date) -> ir.Table:
    """The plan-fit texts' rows. The order code is the renewal's :func:`order_code` of the
    recommended plan (``XY`` and the plan id's letters and digits, ``XYP4G034C24``): one
    code scheme, the one the SMS hall answers with a plan change."""
    running = t.contract_end.notnull() & (t.contract_end >= day)
    code = order_code(t.rec_plan)
    return t.select(
        msisdn=t.msisdn, subscriber_id=t.subscriber_id.cast("int64"),
        template=ibis.ifelse(running, "care.plan_fit", "care.plan_mismatch"),
        idempotency_key=f"journey:plan_mismatch:{closed:%Y-%m}:" + t.msisdn,
        mismatch=t.mismatch, plan_name=_plan_words(t.held_name),
        expiry=ibis.ifelse(running, t.contract_end, ibis.null("date")),
        advice=t.message, order_code=code,
    ).order_by("subscriber_id")


def _mismatch_skipped(t: ir.Table) -> Counter[str]:
    """The day's active subscribers without advice, by reason: a plan the catalogue lacks,
    fewer than three months of use, or a mismatch with no better plan to offer."""
    unknown = t.held_id.isnull()
    fitted = t.fit_sid.notnull()
    row = t.aggregate(
        no_plan=unknown.cast("int64").sum(),
        no_usage=(~unknown & ~fitted).cast("int64").sum(),
        no_recommendation=(t.mismatch.isin(["over", "under"]) & t.message.isnull())
        .cast("int64").sum(),
    ).to_pyarrow().to_pylist()[0]
    return Counter({reason: n for reason, n in row.items() if n})


USAGE = UsageTrigger()
PLAN_MISMATCH = PlanMismatchTrigger()

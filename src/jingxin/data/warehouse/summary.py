"""The warehouse at a glance, as the demo shows it: subscribers by plan (with tier), by
tenure group, by carrier and by payment, and percentiles of the last month's usage.

Every figure is an Ibis expression over the warehouse tables, so the same summary runs on
DuckDB and on PySpark; :func:`summarise` executes them into small DataFrames.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jingxin.data.warehouse.connection import Warehouse

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

TENURE_GROUPS = ("< 6 months", "6–12 months", "> 12 months")
PERCENTILES = (0.10, 0.50, 0.90, 0.99)
USAGE_MEASURES = {"data_mb": "data (MB)", "voice_min": "voice (min)", "bill": "bill (yuan)"}


@dataclass(frozen=True)
class Summary:
    as_of: dt.date
    usage_month: dt.date | None
    subscribers: int
    by_plan: pd.DataFrame  # plan_id, name, tier, subscribers
    by_tenure: pd.DataFrame  # tenure, subscribers
    by_carrier: pd.DataFrame  # carrier, subscribers
    by_payment: pd.DataFrame  # payment, subscribers
    usage: pd.DataFrame  # measure, p10, p50, p90, p99


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` earlier (clamped to the month's last day)."""
    import calendar

    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def by_plan(subscribers: ir.Table, plans: ir.Table) -> ir.Table:
    counts = subscribers.group_by("plan_id").aggregate(subscribers=subscribers.count())
    joined = counts.left_join(plans.select("plan_id", "name", "tier"), "plan_id")
    return joined.select(counts.plan_id, joined.name, joined.tier,
                         counts.subscribers).order_by(["tier", "plan_id"])


def by_tenure(subscribers: ir.Table, as_of: dt.date) -> ir.Table:
    import ibis

    six, twelve = months_before(as_of, 6), months_before(as_of, 12)
    entry = subscribers.entry_date
    group = (ibis.cases((entry > ibis.literal(six), TENURE_GROUPS[0]),
                        (entry >= ibis.literal(twelve), TENURE_GROUPS[1]),
                        else_=TENURE_GROUPS[2]))
    order = ibis.cases((entry > ibis.literal(six), 0), (entry >= ibis.literal(twelve), 1),
                       else_=2)
    counted = subscribers.mutate(tenure=group, _order=order)
    return (counted.group_by(["_order", "tenure"]).aggregate(subscribers=counted.count())
            .order_by("_order").select("tenure", "subscribers"))


def by_column(subscribers: ir.Table, column: str) -> ir.Table:
    return (subscribers.group_by(column).aggregate(subscribers=subscribers.count())
            .order_by([subscribers.count().desc(), column]))


def usage_percentiles(usage: ir.Table, month: dt.date, *, exact: bool = True) -> ir.Table:
    """One row: p10..p99 of each usage measure in ``month`` (approximate where the engine
    only has approximate quantiles)."""
    import ibis

    rows = usage.filter(usage.month == ibis.literal(month))
    metrics = {}
    for column in USAGE_MEASURES:
        for q in PERCENTILES:
            value = rows[column]
            metrics[f"{column}__p{round(q * 100)}"] = (
                value.quantile(q) if exact else value.approx_quantile(q))
    return rows.aggregate(**metrics)


def summarise(warehouse: Warehouse, *, as_of: dt.date | None = None) -> Summary:
    """Run the summary; ``as_of`` defaults to the last day of the latest usage month
    (today when there is no usage)."""
    import pandas as pd

    subs = warehouse.table("subscribers")
    usage = warehouse.table("usage_monthly") if warehouse.has_table("usage_monthly") else None
    month = _latest_month(usage)
    if as_of is None:
        as_of = _month_end(month) if month else dt.date.today()
    plans = warehouse.table("plans") if warehouse.has_table("plans") else None
    plan_table = (by_plan(subs, plans).execute() if plans is not None
                  else by_column(subs, "plan_id").execute())
    usage_frame = pd.DataFrame(columns=["measure", *(f"p{round(q * 100)}" for q in PERCENTILES)])
    if usage is not None and month is not None:
        usage_frame = _usage_frame(usage_percentiles(
            usage, month, exact=warehouse.backend == "duckdb").execute())
    return Summary(
        as_of=as_of, usage_month=month, subscribers=int(subs.count().execute()),
        by_plan=plan_table, by_tenure=by_tenure(subs, as_of).execute(),
        by_carrier=by_column(subs, "carrier").execute(),
        by_payment=by_column(subs, "payment").execute(), usage=usage_frame,
    )


def _latest_month(usage: ir.Table | None) -> dt.date | None:
    if usage is None:
        return None
    value = usage.month.max().execute()
    if value is None or value != value:  # None or NaT
        return None
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def _month_end(month: dt.date) -> dt.date:
    following = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


def _usage_frame(row: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    records = []
    for column, label in USAGE_MEASURES.items():
        record: dict[str, object] = {"measure": label}
        for q in PERCENTILES:
            key = f"p{round(q * 100)}"
            record[key] = float(row[f"{column}__{key}"].iloc[0])
        records.append(record)
    return pd.DataFrame.from_records(records)

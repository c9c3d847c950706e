"""A campaign's outcomes broken down by who the subscribers are: segment, district, tenure
band and plan, from the warehouse's ``subscribers`` (and the latest feature build's value
tier, when there is one).

The per-subscriber outcomes (:func:`jingxin.analytics.metrics.subscriber_outcomes`, an
Arrow table) are registered on the warehouse's DuckDB connection and joined there on the
E.164 number both sides keep; the four breakdowns are one query (``GROUPING SETS``), so a
million recipients is one scan. A warehouse on another engine is read through Ibis into a
DuckDB of our own for the join.

* segment - the value tier (``features.value_tier``) of the latest build on or before the
  campaign's day; without a feature build, the payment type (a note says so);
* district - ``subscribers.region``; tenure - whole months from ``entry_date`` to the
  campaign's day, banded 0-6m, 6-12m, 1-2y, 2-5y, 5y+; plan - ``subscribers.plan_id``.

A subscriber the warehouse does not know is counted under ``unknown``.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

DIMENSIONS = ("segment", "region", "tenure", "plan_id")
TENURE_BANDS = ("0-6m", "6-12m", "1-2y", "2-5y", "5y+", "unknown")
UNKNOWN = "unknown"
SEGMENT_LABELS = {"high": "高价值 high", "mid": "中价值 mid", "low": "低价值 low",
                  "prepaid": "预付费 prepaid", "postpaid": "后付费 postpaid"}  # fmt: skip
SUBSCRIBER_COLUMNS = ("subscriber_id", "msisdn", "region", "plan_id", "payment", "entry_date")


def breakdowns(outcomes: pa.Table | None, warehouse: Any, *,
               as_of: date) -> tuple[dict[str, pa.Table], list[str]]:
    """``by_segment``, ``by_region``, ``by_tenure`` and ``by_plan`` tables, and notes."""
    if outcomes is None or outcomes.num_rows == 0:
        return {}, []
    if warehouse is None:
        return {}, [("no warehouse: the breakdowns by segment, district, tenure and plan are "
                    "left out (run `jingxin synth` and `jingxin import-dir`, or `jingxin "
                    "import`)")]  # fmt: skip
    con, own = _duckdb(warehouse)
    name = f"jx_report_outcomes_{uuid.uuid4().hex[:12]}"
    try:
        if not _has_table(con, "subscribers"):
            return {}, [("the warehouse has no subscribers table: the breakdowns by segment, "
                        "district, tenure and plan are left out")]  # fmt: skip
        build = _feature_build(con, as_of)
        notes = [] if build else [
            ("segment is the payment type: the warehouse has no feature build with value "
            "tiers (run `jingxin audience features`)")]  # fmt: skip
        con.register(name, outcomes.select(["msisdn", "holdout", "sent", "delivered",
                                            "clicked", "replied", "ordered", "opted_out",
                                            "complained", "value"]))  # fmt: skip
        params = {"as_of": as_of} | ({"build": build} if build else {})
        result = con.sql(_sql(name, build), params=params).to_arrow_table()
    finally:
        _forget(con, name)
        if own:
            con.close()
    return _split(result), notes


def _duckdb(warehouse: Any) -> tuple[Any, bool]:
    """The raw DuckDB connection under a Warehouse, an Ibis backend or itself; or, for
    another engine, an in-memory DuckDB holding the subscribers' columns we need (own)."""
    import duckdb

    candidate = warehouse
    for _ in range(3):
        if isinstance(candidate, duckdb.DuckDBPyConnection):
            return candidate, False
        candidate = getattr(candidate, "con", None)
    con = duckdb.connect()
    subscribers = warehouse.table("subscribers").select(*SUBSCRIBER_COLUMNS).to_pyarrow()
    con.register("subscribers", subscribers)
    return con, True


def _has_table(con: Any, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                        [name]).fetchall()  # fmt: skip
    return bool(found[0][0])


def _feature_build(con: Any, as_of: date) -> date | None:
    """The latest feature build on or before ``as_of`` (else the earliest after it)."""
    if not _has_table(con, "features"):
        return None
    row = con.execute("SELECT max(as_of) FILTER (WHERE as_of <= ?), min(as_of) FROM features",
                      [as_of]).fetchall()[0]  # fmt: skip
    return row[0] or row[1]


def _forget(con: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # never registered: the query failed before
        con.unregister(name)


def _sql(outcomes: str, build: date | None) -> str:
    """One scan: the outcomes joined with subscribers (and value tiers), grouped four ways."""
    segment = "f.value_tier" if build else "s.payment"
    features = ("LEFT JOIN (SELECT subscriber_id, value_tier FROM features WHERE as_of = $build) f"
                " ON f.subscriber_id = s.subscriber_id") if build else ""  # fmt: skip
    tenure = ("CASE WHEN m IS NULL THEN 'unknown' WHEN m < 6 THEN '0-6m' WHEN m < 12 THEN "
              "'6-12m' WHEN m < 24 THEN '1-2y' WHEN m < 60 THEN '2-5y' ELSE '5y+' END")
    flags = ("sent", "delivered", "clicked", "replied", "ordered", "opted_out", "complained")
    counts = ",\n  ".join(f"count(*) FILTER (WHERE {f}) AS {f}" for f in flags)
    treated = "count(*) FILTER (WHERE NOT holdout)"
    held = "count(*) FILTER (WHERE holdout)"
    return f"""
WITH base AS (
  SELECT o.*, coalesce({segment}, '{UNKNOWN}') AS segment,
         coalesce(s.region, '{UNKNOWN}') AS region,
         coalesce(s.plan_id, '{UNKNOWN}') AS plan_id,
         date_sub('month', s.entry_date, CAST($as_of AS DATE)) AS m
  FROM "{outcomes}" o
  -- A number may have been recycled: one subscriber per number, the latest to join.
  LEFT JOIN (SELECT * FROM subscribers
             QUALIFY row_number() OVER (PARTITION BY msisdn
                                        ORDER BY entry_date DESC NULLS LAST,
                                                 subscriber_id DESC) = 1) s
    ON s.msisdn = o.msisdn
  {features}
), banded AS (SELECT *, {tenure} AS tenure FROM base)
SELECT
  CASE WHEN grouping(segment) = 0 THEN 'segment' WHEN grouping(region) = 0 THEN 'region'
       WHEN grouping(tenure) = 0 THEN 'tenure' ELSE 'plan_id' END AS dimension,
  coalesce(segment, region, tenure, plan_id) AS "group",
  count(*) AS assigned, {treated} AS treated, {held} AS held_out,
  {counts},
  coalesce(sum(value), 0)::DOUBLE AS value,
  count(*) FILTER (WHERE ordered AND NOT holdout) / nullif({treated}, 0)::DOUBLE AS ordered_rate,
  count(*) FILTER (WHERE ordered AND holdout) / nullif({held}, 0)::DOUBLE AS holdout_rate
FROM banded
GROUP BY GROUPING SETS ((segment), (region), (tenure), (plan_id))
"""


def _split(result: pa.Table) -> dict[str, pa.Table]:
    """One table per dimension, the group column named for it, with the difference of
    rates; biggest groups first (tenure in band order)."""
    out = {}
    for dimension in DIMENSIONS:
        part = result.filter(pc.equal(result["dimension"], dimension)).drop_columns("dimension")
        labels = part["group"]
        if dimension == "segment":
            labels = pa.array([SEGMENT_LABELS.get(v, v) for v in labels.to_pylist()], pa.string())
        part = part.set_column(0, dimension, labels)
        diff = pc.subtract(part["ordered_rate"], part["holdout_rate"])
        part = part.append_column("diff", diff)
        if dimension == "tenure":
            order = pc.index_in(part["tenure"], value_set=pa.array(TENURE_BANDS))
            part = part.append_column("_order", order).sort_by("_order").drop_columns("_order")
        else:
            part = part.sort_by([("assigned", "descending"), (dimension, "ascending")])
        out[f"by_{'plan' if dimension == 'plan_id' else dimension}"] = part
    return out

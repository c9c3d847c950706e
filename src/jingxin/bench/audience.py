"""Audience benchmarks: the feature build, plan fit, the composite segment and resident
cells, each beside a baseline measured in the same run.

Data comes from the synthetic operator (:mod:`jingxin.data.synth`) when it is installed,
else from :mod:`jingxin.audience.quickevents` (a quick numpy warehouse); the figures name
which. ``--scale`` is the number of subscribers (for ``resident-cells`` and the composite
benchmarks every subscriber also gets 7 days of location events). The ``*-spark`` variants run the same spec on PySpark local mode
to show that it scales out unchanged (and check the counts agree).

Goals at 10M subscribers: features <= 20 s, plan fit <= 30 s, composite within 2x of
hand-written SQL, resident cells (1M x 7 days x 20 events) <= 60 s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jingxin.bench import benchmark, timed


@dataclass
class BenchData:
    warehouse: Any
    tables: dict[str, Any]  # Arrow tables, for the baselines
    as_of: dt.date
    source: str  # "synth" or "quickdata"


def _synth_tables(scale: int, events: bool) -> dict[str, Any] | None:
    """The synthetic operator's tables, or None when it is not installed."""
    try:
        from jingxin.data.synth import SynthParams, synthesize
    except ImportError:
        return None
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    params = SynthParams(subscribers=scale, location_subscribers=scale if events else 0,
                         cells=max(500, min(20_000, scale // 50)))
    with tempfile.TemporaryDirectory(prefix="jingxin-bench-") as tmp:
        out = Path(tmp) / "synth"
        synthesize(params=params, out=out)
        return {p.stem: pq.read_table(p) for p in sorted(out.glob("*.parquet"))}


def _warehouse(scale: int, *, events: bool = False) -> BenchData:
    from jingxin.audience.quickevents import load, warehouse_tables
    from jingxin.audience.store import usage_as_of
    from jingxin.data.warehouse.connection import open_duckdb

    tables, source = _synth_tables(scale, events), "synth"
    if tables is None:
        tables, source = warehouse_tables(scale, events_days=7 if events else 0,
                                          events_per_day=20), "quickdata"
    wh = open_duckdb(":memory:")
    load(wh, tables)
    return BenchData(wh, tables, usage_as_of(wh), source)


def _districts(data: BenchData, n: int = 3) -> list[str]:
    """The ``n`` districts with the most cells: the composite benchmark's area."""
    cells = data.tables["cells"].to_pandas()
    return sorted(cells["district"].value_counts().index[:n])


def _ratio(ours: float, base: float) -> float:
    return round(base / ours, 2) if ours else 0.0


@benchmark("audience-features", summary="usage-based features, DuckDB vs pandas",
           default_scale=100_000)
def features_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.features import FeatureParams, usage_part
    from jingxin.audience.pandas_baseline import usage_features

    d = _warehouse(scale)
    expr = usage_part(d.warehouse, d.as_of, FeatureParams())
    ours, _ = timed(lambda: d.warehouse.con.create_table("bench_features", expr,
                                                         overwrite=True))
    usage, plans = d.tables["usage_monthly"].to_pandas(), d.tables["plans"].to_pandas()
    base, _ = timed(lambda: usage_features(usage, plans, d.as_of))
    return {"data": d.source, "subscribers": scale, "usage_rows": len(usage),
            "duckdb_s": round(ours, 3), "pandas_s": round(base, 3),
            "speedup_vs_pandas": _ratio(ours, base)}


@benchmark("planfit", summary="plan fit (cross join + argmin), DuckDB vs pandas",
           default_scale=100_000)
def planfit_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.pandas_baseline import plan_fit
    from jingxin.audience.planfit import plan_fit_expr

    d = _warehouse(scale)
    expr = plan_fit_expr(d.warehouse, as_of=d.as_of)
    ours, _ = timed(lambda: d.warehouse.con.create_table("bench_planfit", expr,
                                                         overwrite=True))
    f = {k: d.tables[k].to_pandas() for k in ("usage_monthly", "plans", "subscribers")}
    base, _ = timed(lambda: plan_fit(f["subscribers"], f["usage_monthly"], f["plans"],
                                     d.as_of))
    return {"data": d.source, "subscribers": scale, "duckdb_s": round(ours, 3),
            "pandas_s": round(base, 3), "speedup_vs_pandas": _ratio(ours, base)}


def _composite_spec(districts: list[str]) -> dict[str, Any]:
    return {"name": "bench-composite",
            "composite": {"area": {"districts": districts}, "preference": "data_heavy",
                          "max_price_sensitivity": 0.5}}


def _hand_sql(as_of: dt.date, districts: list[str]) -> str:
    names = ", ".join("'" + n.replace("'", "''") + "'" for n in districts)
    return f"""
SELECT count(*) FROM subscribers s JOIN features f ON s.subscriber_id = f.subscriber_id
WHERE f.as_of = DATE '{as_of.isoformat()}' AND f.home_district IN ({names})
  AND f.product_preference = 'data_heavy' AND f.price_sensitivity <= 0.5
  AND NOT f.complaint_sensitive
"""


def _composite(wh, districts: list[str]) -> tuple[float, int, float]:
    """(seconds to run, count, seconds to validate and compile) of the composite spec."""
    from jingxin.audience.compile import compile_spec
    from jingxin.audience.explain import count
    from jingxin.audience.spec import parse_spec

    spec = parse_spec(_composite_spec(districts))
    compile_s, compiled = timed(lambda: compile_spec(wh, spec))
    run_s, n = timed(lambda: count(compiled))
    return run_s, n, compile_s


@benchmark("composite", summary="composite segment: spec compiler vs hand-written SQL",
           default_scale=100_000)
def composite_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.features import build_features

    d = _warehouse(scale, events=True)
    build_features(d.warehouse, as_of=d.as_of)
    districts = _districts(d)
    ours, n, compile_s = _composite(d.warehouse, districts)
    sql = _hand_sql(d.as_of, districts)
    base, hand = timed(lambda: d.warehouse.con.con.execute(sql).fetchone()[0])
    # The spec's query also derives the offer columns (nearest hall); the hand SQL only
    # counts, so the ratio is an upper bound of the compiler's overhead.
    return {"data": d.source, "subscribers": scale, "selected": n,
            "hand_sql_selected": int(hand), "spec_compile_s": round(compile_s, 3),
            "spec_s": round(ours, 3), "hand_sql_s": round(base, 3),
            "spec_over_hand": round(ours / base, 2) if base else None}


@benchmark("composite-spark", summary="the same composite spec on PySpark local mode",
           default_scale=20_000)
def composite_spark_bench(scale: int) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from jingxin.audience.features import build_features
    from jingxin.data.warehouse.connection import open_pyspark

    d = _warehouse(scale, events=True)
    build_features(d.warehouse, as_of=d.as_of)
    districts = _districts(d)
    duck_s, duck_n, _ = _composite(d.warehouse, districts)
    spark = open_pyspark()
    tables = {**d.tables, "features": d.warehouse.table("features").to_pyarrow()}
    with tempfile.TemporaryDirectory(prefix="jingxin-bench-") as tmp:
        # Through Parquet: Ibis's create_table from Arrow on PySpark goes via pandas and
        # turns NULL strings into 'NaN'.
        for name, table in tables.items():
            pq.write_table(table, Path(tmp) / f"{name}.parquet")
            spark.con.read_parquet(str(Path(tmp) / f"{name}.parquet"), table_name=name)
        spark_s, spark_n, _ = _composite(spark, districts)
    return {"data": d.source, "subscribers": scale, "duckdb_selected": duck_n,
            "spark_selected": spark_n, "same_result": duck_n == spark_n,
            "duckdb_s": round(duck_s, 3), "spark_s": round(spark_s, 3)}


@benchmark("resident-cells", summary="home/work cells from 7 days of events vs pandas",
           default_scale=10_000)
def resident_cells_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.pandas_baseline import resident_cells as pandas_cells
    from jingxin.audience.residence import resident_cells
    from jingxin.audience.window import AsOf

    d = _warehouse(scale, events=True)
    wh = d.warehouse
    expr = resident_cells(events=wh.table("location_events"), cells=wh.table("cells"),
                          window=AsOf(d.as_of))
    ours, _ = timed(lambda: wh.con.create_table("bench_res", expr, overwrite=True))
    events = d.tables["location_events"].to_pandas()
    base, homes = timed(lambda: pandas_cells(events, d.as_of))
    mine = wh.table("bench_res").select("subscriber_id", "home_cell").to_pandas()
    mine = mine.dropna().set_index("subscriber_id")["home_cell"].sort_index()
    agree = float((mine == homes.reindex(mine.index)).mean()) if len(mine) else None
    return {"data": d.source, "subscribers": scale, "events": len(events),
            "duckdb_s": round(ours, 3), "pandas_s": round(base, 3),
            "speedup_vs_pandas": _ratio(ours, base), "homes_agree_share": agree}

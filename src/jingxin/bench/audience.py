"""Audience benchmarks: the feature build, plan fit, the composite segment and resident
cells, each beside a baseline measured in the same run.

Data comes from the synthetic operator (:mod:`jingxin.data.synth`), written to a temporary
folder and loaded by DuckDB itself (``read_parquet`` into a file-backed database), so that
10M subscribers fit in memory. ``--scale`` is the number of subscribers; ``resident-cells``
gives every subscriber a week of location events, ``composite`` up to 1M of them. The
pandas baselines hold everything in memory, so above ``PANDAS_CAP`` subscribers they run
on the first ``PANDAS_CAP`` and are extrapolated linearly (``pandas_extrapolated``).
Each ``*-spark`` variant runs the same expression on PySpark local mode (over the same
Parquet files) to show that it scales out unchanged, and checks that the two engines give
the same rows (``EXCEPT ALL`` both ways) or, for the composite, the same count.

Goals at 10M subscribers: features <= 20 s, plan fit <= 30 s, composite within 2x of
hand-written SQL, resident cells (1M x 7 days x 20 events) <= 60 s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jingxin.bench import benchmark, timed

# pandas holds every row in memory: above these many subscribers its baseline runs on the
# first N subscribers and is extrapolated linearly (the figures say so).
PANDAS_CAP = 1_000_000
PANDAS_EVENTS_CAP = 100_000


@dataclass
class BenchData:
    warehouse: Any
    files: dict[str, Path]  # the synthetic operator's Parquet files, for the baselines
    as_of: dt.date
    source: str
    tmp: Path

    def read(self, table: str, *, cap: int | None = None, columns=None) -> Any:
        """A table as pandas, only subscribers ``<= cap`` when given (ids start at 1)."""
        import pyarrow.dataset as ds

        dataset = ds.dataset(self.files[table])
        where = ds.field("subscriber_id") <= cap if cap else None
        return dataset.to_table(columns=columns, filter=where).to_pandas()

    def close(self) -> None:
        import shutil

        self.warehouse.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _warehouse(scale: int, *, events: int = 0) -> BenchData:
    """The synthetic operator on disk and in a file-backed DuckDB (loaded by DuckDB itself
    with read_parquet: nothing passes through Python memory). ``events``: subscribers with
    a week of location events."""
    import tempfile

    from jingxin.audience.store import usage_as_of
    from jingxin.data.synth import SynthParams, synthesize
    from jingxin.data.warehouse.connection import open_duckdb

    tmp = Path(tempfile.mkdtemp(prefix="jingxin-bench-"))
    params = SynthParams(subscribers=scale, location_subscribers=events,
                         cells=max(500, min(20_000, scale // 50)))
    synthesize(params=params, out=tmp / "synth")
    files = {p.stem: p for p in sorted((tmp / "synth").glob("*.parquet"))}
    wh = open_duckdb(tmp / "bench.duckdb")
    for name, path in files.items():
        wh.con.raw_sql(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{path}')")
    # Loading is `jingxin import`'s work, done before any audience command runs, in a
    # process of its own: the timed steps start from a warehouse opened afresh.
    wh.close()
    wh = open_duckdb(tmp / "bench.duckdb")
    return BenchData(wh, files, usage_as_of(wh), "synth", tmp)


def _districts(data: BenchData, n: int = 3) -> list[str]:
    """The ``n`` districts with the most cells: the composite benchmark's area."""
    rows = data.warehouse.con.raw_sql(
        f"SELECT district FROM cells GROUP BY district ORDER BY count(*) DESC, district LIMIT {n}"
    ).fetchall()
    return sorted(r[0] for r in rows)


def _ratio(ours: float, base: float) -> float:
    return round(base / ours, 2) if ours else 0.0


def _baseline(scale: int, cap: int, run) -> tuple[float, Any, dict[str, Any]]:
    """Time ``run(cap_or_None)``; above ``cap`` subscribers, extrapolate linearly."""
    sampled = scale > cap
    seconds, result = timed(lambda: run(cap if sampled else None))
    figures = {"pandas_subscribers": cap if sampled else scale}
    if sampled:
        figures["pandas_measured_s"] = round(seconds, 3)
        seconds = seconds * scale / cap
        figures["pandas_extrapolated"] = True
    return seconds, result, figures


@benchmark("audience-features", summary="usage-based features, DuckDB vs pandas",
           default_scale=100_000)
def features_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.features import FeatureParams, usage_part
    from jingxin.audience.pandas_baseline import usage_features
    from jingxin.audience.store import write_table

    d = _warehouse(scale)
    try:
        expr = usage_part(d.warehouse, d.as_of, FeatureParams())
        # Written as the feature build writes (store.write_table: no row order kept).
        ours, _ = timed(lambda: write_table(d.warehouse, "bench_features", expr))
        rows = d.warehouse.con.raw_sql("SELECT count(*) FROM usage_monthly").fetchall()[0][0]
        plans = d.read("plans")
        base, _, extra = _baseline(scale, PANDAS_CAP, lambda cap: usage_features(
            d.read("usage_monthly", cap=cap), plans, d.as_of))
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "usage_rows": rows,
            "duckdb_s": round(ours, 3), "pandas_s": round(base, 3), **extra,
            "speedup_vs_pandas": _ratio(ours, base)}


@benchmark("planfit", summary="plan fit (cross join + argmin), DuckDB vs pandas",
           default_scale=100_000)
def planfit_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.pandas_baseline import plan_fit
    from jingxin.audience.planfit import plan_fit_expr
    from jingxin.audience.store import write_table

    d = _warehouse(scale)
    try:
        expr = plan_fit_expr(d.warehouse, as_of=d.as_of)
        ours, _ = timed(lambda: write_table(d.warehouse, "bench_planfit", expr))
        plans = d.read("plans")
        base, _, extra = _baseline(scale, PANDAS_CAP, lambda cap: plan_fit(
            d.read("subscribers", cap=cap), d.read("usage_monthly", cap=cap), plans, d.as_of))
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "duckdb_s": round(ours, 3),
            "pandas_s": round(base, 3), **extra, "speedup_vs_pandas": _ratio(ours, base)}


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

    # Home cells need location events: a week of them for up to 1M subscribers (the rest
    # have no resident cell and fall outside any area), features for everyone.
    d = _warehouse(scale, events=min(scale, 1_000_000))
    try:
        build_features(d.warehouse, as_of=d.as_of)
        districts = _districts(d)
        ours, n, compile_s = _composite(d.warehouse, districts)
        sql = _hand_sql(d.as_of, districts)
        base, hand = timed(lambda: d.warehouse.con.con.execute(sql).fetchall()[0][0])
    finally:
        d.close()
    # The spec's query also derives the offer columns (nearest hall); the hand SQL only
    # counts, so the ratio is an upper bound of the compiler's overhead.
    return {"data": d.source, "subscribers": scale, "selected": n,
            "hand_sql_selected": int(hand), "spec_compile_s": round(compile_s, 3),
            "spec_s": round(ours, 3), "hand_sql_s": round(base, 3),
            "spec_over_hand": round(ours / base, 2) if base else None}


def _spark(d: BenchData, extra: dict[str, Path] | None = None) -> Any:
    """A PySpark local-mode warehouse over the synthetic operator's Parquet files (and
    ``extra`` ones). Through Parquet: Ibis's create_table from Arrow on PySpark goes via
    pandas and turns NULL strings into 'NaN'."""
    from jingxin.data.warehouse.connection import open_pyspark

    spark = open_pyspark()
    for name, path in {**d.files, **(extra or {})}.items():
        spark.con.read_parquet(str(path), table_name=name)
    return spark


def _spark_run(d: BenchData, duck_table: str, spark_expr: Any) -> dict[str, Any]:
    """Run ``spark_expr`` on Spark (computed and collected) and compare its rows with the
    DuckDB table ``duck_table``: row counts, and rows found on one side only (``EXCEPT
    ALL`` both ways, in DuckDB). ``same_result`` only when both are zero."""
    spark_s, arrow = timed(spark_expr.to_pyarrow)
    con = d.warehouse.con.con
    con.register("spark_result", arrow)
    try:
        def only(a: str, b: str) -> int:
            sql = f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})"
            return int(con.execute(sql).fetchall()[0][0])

        only_duck, only_spark = only(duck_table, "spark_result"), only("spark_result",
                                                                        duck_table)
        duck_rows = int(con.execute(f"SELECT count(*) FROM {duck_table}").fetchall()[0][0])
    finally:
        con.unregister("spark_result")
    return {"spark_s": round(spark_s, 3), "duckdb_rows": duck_rows,
            "spark_rows": arrow.num_rows, "rows_only_in_duckdb": only_duck,
            "rows_only_in_spark": only_spark,
            "same_result": only_duck == 0 and only_spark == 0}


def _duck_run(d: BenchData, table: str, expr: Any) -> float:
    """Seconds DuckDB takes to compute ``expr`` into ``table`` (written as the product
    writes derived tables)."""
    from jingxin.audience.store import write_table

    seconds, _ = timed(lambda: write_table(d.warehouse, table, expr))
    return round(seconds, 3)


@benchmark("composite-spark", summary="the same composite spec on PySpark local mode",
           default_scale=20_000)
def composite_spark_bench(scale: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from jingxin.audience.features import build_features

    d = _warehouse(scale, events=scale)
    try:
        build_features(d.warehouse, as_of=d.as_of)
        districts = _districts(d)
        duck_s, duck_n, _ = _composite(d.warehouse, districts)
        features = d.tmp / "features.parquet"
        pq.write_table(d.warehouse.table("features").to_pyarrow(), features)
        spark = _spark(d, {"features": features})
        spark_s, spark_n, _ = _composite(spark, districts)
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "duckdb_selected": duck_n,
            "spark_selected": spark_n, "same_result": duck_n == spark_n,
            "duckdb_s": round(duck_s, 3), "spark_s": round(spark_s, 3)}


@benchmark("audience-features-spark",
           summary="the usage-based features on PySpark local mode vs DuckDB",
           default_scale=100_000)
def features_spark_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.features import FeatureParams, usage_part

    d = _warehouse(scale)
    try:
        duck_s = _duck_run(d, "bench_features",
                           usage_part(d.warehouse, d.as_of, FeatureParams()))
        spark = _spark(d)
        figures = _spark_run(d, "bench_features",
                             usage_part(spark, d.as_of, FeatureParams()))
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "duckdb_s": duck_s, **figures}


@benchmark("planfit-spark", summary="plan fit on PySpark local mode vs DuckDB",
           default_scale=100_000)
def planfit_spark_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.planfit import plan_fit_expr

    d = _warehouse(scale)
    try:
        duck_s = _duck_run(d, "bench_planfit", plan_fit_expr(d.warehouse, as_of=d.as_of))
        spark = _spark(d)
        figures = _spark_run(d, "bench_planfit", plan_fit_expr(spark, as_of=d.as_of))
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "duckdb_s": duck_s, **figures}


@benchmark("resident-cells-spark",
           summary="home/work cells from 7 days of events on PySpark local mode vs DuckDB",
           default_scale=20_000)
def resident_cells_spark_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.residence import resident_cells
    from jingxin.audience.window import AsOf

    def expr(wh: Any) -> Any:
        return resident_cells(events=wh.table("location_events"), cells=wh.table("cells"),
                              window=AsOf(d.as_of))

    d = _warehouse(scale, events=scale)
    try:
        duck_s = _duck_run(d, "bench_res", expr(d.warehouse))
        figures = _spark_run(d, "bench_res", expr(_spark(d)))
        events = d.warehouse.con.raw_sql("SELECT count(*) FROM location_events").fetchall()
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "events": events[0][0],
            "duckdb_s": duck_s, **figures}


@benchmark("resident-cells", summary="home/work cells from 7 days of events vs pandas",
           default_scale=10_000)
def resident_cells_bench(scale: int) -> dict[str, Any]:
    from jingxin.audience.pandas_baseline import resident_cells as pandas_cells
    from jingxin.audience.residence import resident_cells
    from jingxin.audience.store import write_table
    from jingxin.audience.window import AsOf

    d = _warehouse(scale, events=scale)
    try:
        wh = d.warehouse
        expr = resident_cells(events=wh.table("location_events"), cells=wh.table("cells"),
                              window=AsOf(d.as_of))
        ours, _ = timed(lambda: write_table(wh, "bench_res", expr))
        events = wh.con.raw_sql("SELECT count(*) FROM location_events").fetchall()[0][0]
        base, homes, extra = _baseline(scale, PANDAS_EVENTS_CAP, lambda cap: pandas_cells(
            d.read("location_events", cap=cap), d.as_of))
        mine = wh.table("bench_res").select("subscriber_id", "home_cell").to_pandas()
        mine = mine.dropna().set_index("subscriber_id")["home_cell"].sort_index()
        mine = mine[mine.index.isin(homes.index)]  # the subscribers pandas saw
        agree = float((mine == homes.reindex(mine.index)).mean()) if len(mine) else None
    finally:
        d.close()
    return {"data": d.source, "subscribers": scale, "events": events,
            "duckdb_s": round(ours, 3), "pandas_s": round(base, 3), **extra,
            "speedup_vs_pandas": _ratio(ours, base), "homes_agree_share": agree}

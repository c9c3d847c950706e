"""The same specs, features and plan fit on PySpark local mode and DuckDB give identical
results on the tiny warehouse."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

TINY = Path(__file__).parents[2] / "unit" / "audience" / "tiny.py"


def _tiny():
    spec = importlib.util.spec_from_file_location("audience_tiny", TINY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engines(spark_session, tmp_path_factory):
    from jingxin.audience.features import build_features
    from jingxin.data.warehouse.connection import open_duckdb, open_pyspark

    tiny = _tiny()
    spark = open_pyspark(spark_session)
    duck = open_duckdb(":memory:")
    tiny.load(duck)
    _load_via_parquet(spark, tiny.tables(), tmp_path_factory.mktemp("parquet"))
    for wh in (duck, spark):
        build_features(wh, as_of=tiny.AS_OF)
    yield duck, spark, tiny
    duck.close()


def _load_via_parquet(spark, tables, directory: Path) -> None:
    """Through Parquet: Ibis's create_table from Arrow goes via pandas on PySpark and
    turns a NULL string into the text 'NaN'."""
    import pyarrow.parquet as pq

    for name, table in tables.items():
        path = directory / f"{name}.parquet"
        pq.write_table(table, path)
        spark.con.read_parquet(str(path), table_name=name)


SPECS = [
    {"name": "tree", "where": {"any": [
        {"all": [{"field": "region", "op": "eq", "value": "浦东新区"},
                 {"not": {"field": "plan.tier", "op": "eq", "value": 3}}]},
        {"field": "plan_fit", "op": "eq", "value": "over"}]}},
    {"name": "ops", "where": {"all": [
        {"field": "entry_date", "op": "lt", "value": "2024-01-01"},
        {"field": "handset_model", "op": "contains", "value": "a"},
        {"field": "arpu", "op": "between", "value": [10, 100]}]}},
    {"name": "composite", "composite": {"area": {"districts": ["浦东新区", "闵行区"]},
                                        "max_price_sensitivity": 0.9}},
    {"name": "sets", "where": {"field": "region", "op": "eq", "value": "浦东新区"},
     "combine": [{"op": "minus", "segment": {"name": "post", "where": {
         "field": "plan.payment", "op": "eq", "value": "postpaid"}}}],
     "sample": {"fraction": 0.8, "seed": 3}},
    {"name": "limited", "limit": {"n": 3, "order_by": [{"field": "star_level",
                                                        "desc": True}]}},
]


@pytest.mark.parametrize("raw", SPECS, ids=[s["name"] for s in SPECS])
def test_same_spec_same_rows(engines, raw):
    from jingxin.audience.compile import compile_spec
    from jingxin.audience.spec import parse_spec

    duck, spark, _ = engines
    spec = parse_spec(raw)
    rows = []
    for wh in (duck, spark):
        df = compile_spec(wh, spec).expr.to_pandas()
        rows.append(df.sort_values("subscriber_id").astype(str).to_dict("records"))
    assert rows[0] == rows[1]
    assert rows[0], "the parity case should select someone"


def test_same_features(engines):
    duck, spark, _ = engines
    cols = ["subscriber_id", "price_sensitivity", "product_preference", "plan_fit",
            "home_cell", "work_cell", "channel_preference", "tenure_months"]
    a, b = (wh.table("features").select(*cols).to_pandas().sort_values("subscriber_id")
            .reset_index(drop=True) for wh in (duck, spark))
    assert a.astype(str).equals(b.astype(str))


def test_same_plan_fit(engines):
    from jingxin.audience.planfit import plan_fit_expr

    duck, spark, tiny = engines
    a, b = (plan_fit_expr(wh, as_of=tiny.AS_OF).select(
        "subscriber_id", "best_plan_id", "saving", "message").to_pandas()
        .sort_values("subscriber_id").reset_index(drop=True) for wh in (duck, spark))
    assert a.astype(str).equals(b.astype(str))

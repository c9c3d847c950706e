"""The feature build on the tiny warehouse: every derived feature against hand answers."""

from __future__ import annotations

import datetime as dt

import pytest
import tiny

from jingxin.audience.features import FEATURES, build_features
from jingxin.audience.residence import resident_cells
from jingxin.audience.window import AsOf
from jingxin.errors import WarehouseError


@pytest.fixture(scope="module")
def rows(featured_shared):
    df = featured_shared.table("features").to_pandas().set_index("subscriber_id")
    return df


@pytest.mark.parametrize(
    ("sid", "column", "expected"),
    [
        (1, "plan_fit", "under"), (2, "plan_fit", "over"), (3, "plan_fit", "fit"),
        (2, "usage_trend", "surge"), (1, "usage_trend", "stable"),
        (3, "product_preference", "data_heavy"), (4, "product_preference", "voice_heavy"),
        (5, "product_preference", "balanced"),
        (3, "handset_upgrade", True), (2, "handset_upgrade", False),
        (2, "tenure_months", 3), (2, "tenure_group", "under_6m"),
        (3, "tenure_group", "6_12m"), (1, "tenure_group", "over_12m"),
        (4, "value_tier", "low"), (2, "value_tier", "high"), (1, "value_tier", "mid"),
        (4, "price_sensitivity", 0.88), (2, "price_sensitivity", 0.2),
        (1, "price_sensitivity", 0.0),
        (5, "channel_preference", "physical"), (2, "channel_preference", "electronic"),
        (3, "channel_preference", "electronic"), (1, "channel_preference", "physical"),
        (4, "complaint_sensitive", True), (1, "complaint_sensitive", False),
        (2, "home_cell", "C3"), (1, "home_cell", "C1"), (1, "work_cell", "C2"),
        (4, "home_district", "闵行区"),
        (4, "arpu", 30.0), (4, "arpu_prev", 50.0),
    ],
)
def test_feature_values(rows, sid, column, expected):
    assert rows.loc[sid, column] == pytest.approx(expected)


def test_only_subscribers_who_entered_before_as_of(rows):
    assert sorted(rows.index) == [1, 2, 3, 4, 5]
    assert list(rows.columns) == [c for c in FEATURES.names if c != "subscriber_id"]


def test_rebuild_replaces_only_its_own_date(featured):
    # Given a build as of July / When June is built and July rebuilt
    build_features(featured, as_of=dt.date(2024, 6, 1))
    build_features(featured, as_of=tiny.AS_OF)
    # Then both dates are there once each
    counts = featured.table("features").group_by("as_of").aggregate(n=lambda t: t.count())
    assert sorted(counts.to_pandas()["n"]) == [5, 5]


def test_events_abroad_and_after_as_of_are_ignored(warehouse):
    res = resident_cells(events=warehouse.table("location_events"),
                         cells=warehouse.table("cells"), window=AsOf(dt.date(2024, 6, 27)))
    df = res.to_pandas().set_index("subscriber_id")
    assert "C9" not in set(df["home_cell"])
    assert df.loc[2, "home_cell"] == "C3"


def test_missing_column_is_a_warehouse_error_naming_it(warehouse):
    # Given a usage table without its bill column
    t = tiny.tables()["usage_monthly"].drop_columns(["bill"])
    warehouse.con.create_table("usage_monthly", t, overwrite=True)
    with pytest.raises(WarehouseError, match="'usage_monthly' has no column 'bill'"):
        build_features(warehouse, as_of=tiny.AS_OF)


def test_optional_tables_may_be_absent():
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(":memory:")
    tiny.load(wh, skip=("location_events", "offers", "complaints", "channel_contacts"))
    assert build_features(wh, as_of=tiny.AS_OF) == 5
    df = wh.table("features").to_pandas()
    assert df["home_cell"].isna().all() and not df["complaint_sensitive"].any()


@pytest.mark.parametrize(
    ("tiers", "expected"),  # the tier held each month, newest first; None: no known tier
    [
        ([3, 3, 3, 3, 3, 3], 0.0),
        ([2, 3, None, None, None, None], 1.0),  # fell last month
        ([3, 2, 3, None, None, None], 1.0),  # fell, then came back up
        ([4, 3, 2, 1, 1, 1], 0.0),  # only ever up
        ([2, None, None, 3, None, None], 1.0),  # months without a tier are skipped
        ([None, None, None, None, None, 5], 0.0),  # one month: nothing to compare
        ([None] * 6, 0.0),
    ],
)
def test_downgrade_compares_each_month_with_the_last_one_known(tiers, expected):
    import ibis

    from jingxin.audience.sensitivity import downgrade

    t = ibis.memtable({f"m{k}": [v] for k, v in enumerate(tiers)},
                      schema={f"m{k}": "int8" for k in range(6)})
    got = t.select(d=downgrade([t[f"m{k}"] for k in range(6)])).to_pandas().d[0]
    assert got == expected


def test_derived_tables_are_written_without_keeping_row_order(warehouse):
    # Given DuckDB's default (keep insertion order)
    from jingxin.audience.store import write_table

    con = warehouse.con.con
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    # When a derived table is written, the write itself runs without it
    con.execute("CREATE VIEW setting AS SELECT current_setting('preserve_insertion_order')"
                " AS kept")  # read when the write runs
    write_table(warehouse, "probe", warehouse.table("setting"))
    assert warehouse.table("probe").to_pandas().kept.tolist() == [False]
    # And the connection's setting is as it was afterwards
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]

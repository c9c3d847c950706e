"""Parquet imports into a DuckDB file: round trip, row numbers in rejects, type coercion,
atomic loads and directory imports in dependency order."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse_parquet_samples import sample_rows, write_parquet

from jingxin.data.warehouse import importer
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.directory import import_directory
from functools import partial

from jingxin.data.warehouse import importer as _importer

# These tests read the rejects of small files, where one bad row is a large share: the
# refusal of such files is tested in test_warehouse_import_refusal.py.
import_table = partial(_importer.import_table, max_reject_share=1.0)
from jingxin.errors import ImportFileError, WarehouseError


def test_parquet_round_trip_keeps_every_value(warehouse, warehouse_path, tmp_path):
    # Given subscribers written with the schema's Arrow types (no carrier column)
    rows = sample_rows()["subscribers"]
    path = write_parquet(tmp_path / "subscribers.parquet", "subscribers", rows)
    # When imported and the warehouse reopened
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    warehouse.close()
    reopened = open_duckdb(warehouse_path, read_only=True)
    got = reopened.table("subscribers").to_pyarrow().sort_by("subscriber_id").to_pylist()
    reopened.close()
    # Then every row reads back as written, with the carrier derived
    assert report.format == "parquet" and report.rows_loaded == len(rows)
    carriers = ["china_mobile", "china_unicom", "china_telecom", "china_broadnet"]
    assert got == [dict(row, carrier=c) for row, c in zip(rows, carriers, strict=True)]


def test_parquet_rejects_name_the_row_number(warehouse, tmp_path):
    rows = sample_rows()["subscribers"]
    rows[2] = dict(rows[2], msisdn="+8601012345678", status="gone")
    path = write_parquet(tmp_path / "subscribers.parquet", "subscribers", rows)
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    lines = report.rejects_path.read_text().splitlines()
    assert lines[0].startswith("row,field,reason,subscriber_id,msisdn")
    assert [line.split(",")[:2] for line in lines[1:]] == [["3", "msisdn"], ["3", "status"]]
    assert report.rows_loaded == 3


def test_parquet_with_loose_types_is_cast_and_fractions_are_refused(warehouse, tmp_path):
    # Given usage with ids as text and sms as floats, one of them fractional
    table = pa.table({
        "subscriber_id": ["1", "2", "x"], "month": ["2025-06-01"] * 3, "plan_id": ["P"] * 3,
        "data_mb": [1.0, 2.0, 3.0], "voice_min": [1.0, 2.0, 3.0], "sms": [1.0, 2.5, 3.0],
        "bill": [1.0, 2.0, 3.0], "topup_count": [0, 0, 0], "topup_amount": [0.0] * 3,
        "roaming_days_domestic": [0] * 3, "roaming_days_international": [0] * 3,
    })
    pq.write_table(table, tmp_path / "usage.parquet")
    report = import_table(warehouse, table="usage_monthly", path=tmp_path / "usage.parquet",
                          rejects_dir=tmp_path)
    assert report.problems == {"sms: not a valid integer (int32)": 1,
                               "subscriber_id: not a valid integer (int64)": 1}
    assert report.rows_loaded == 1


def test_a_failure_while_loading_leaves_the_table_as_it_was(warehouse, tmp_path,
                                                           monkeypatch):
    # Given a table with one import in it
    data = sample_rows()
    write_parquet(tmp_path / "plans.parquet", "plans", data["plans"][:1])
    import_table(warehouse, table="plans", path=tmp_path / "plans.parquet", rejects_dir=tmp_path)
    write_parquet(tmp_path / "more.parquet", "plans", data["plans"][1:])

    # When the next load dies after inserting its rows
    real_insert = importer._insert_rows

    def insert_then_fail(con, spec, **kwargs):
        real_insert(con, spec, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "_insert_rows", insert_then_fail)
    for replace in (False, True):
        with pytest.raises(WarehouseError, match="nothing was written: disk full"):
            import_table(warehouse, table="plans", path=tmp_path / "more.parquet",
                         rejects_dir=tmp_path, replace=replace)
        # Then the table holds exactly what it held before
        got = warehouse.con.con.execute("SELECT plan_id FROM plans").fetchall()
        assert got == [("P18",)]


def test_a_table_of_another_shape_asks_for_replace(warehouse, tmp_path):
    warehouse.con.con.execute("CREATE TABLE plans (plan_id VARCHAR)")
    path = write_parquet(tmp_path / "plans.parquet", "plans", sample_rows()["plans"])
    with pytest.raises(WarehouseError, match="does not match the schema.*--replace"):
        import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path)
    report = import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path,
                          replace=True)
    assert report.rows_in_table == 2


def test_a_directory_imports_in_dependency_order(warehouse, tmp_path):
    # Given synth-style output plus a stray file
    data = sample_rows()
    out = tmp_path / "synth"
    out.mkdir()
    for table, rows in data.items():
        write_parquet(out / f"{table}.parquet", table, rows)
    (out / "README.txt").write_text("not a table")
    # When the directory is imported
    result = import_directory(warehouse, out, rejects_dir=tmp_path)
    # Then catalogues come before subscribers and usage; the stray file is listed
    assert [r.table for r in result.reports] == ["plans", "subscribers", "usage_monthly"]
    assert [r.rows_loaded for r in result.reports] == [2, 4, 5]
    assert [p.name for p in result.ignored] == ["README.txt"]


def test_a_directory_without_tables_or_with_two_files_for_one_table(warehouse, tmp_path):
    with pytest.raises(ImportFileError, match="no <table>.parquet"):
        import_directory(warehouse, tmp_path)
    write_parquet(tmp_path / "plans.parquet", "plans", sample_rows()["plans"])
    (tmp_path / "plans.csv").write_text("plan_id\nP1\n")
    with pytest.raises(ImportFileError, match="both plans.csv and plans.parquet"):
        import_directory(warehouse, tmp_path)


def test_a_carrier_in_the_file_is_recomputed_from_the_number(warehouse, tmp_path):
    # Given synth-style subscribers that carry a (wrong) carrier column
    rows = [dict(r, carrier="other") for r in sample_rows()["subscribers"]]
    path = write_parquet(tmp_path / "subscribers.parquet", "subscribers", rows)
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    assert report.recomputed_columns == ("carrier",) and report.extra_columns == ()
    got = warehouse.con.con.execute("SELECT carrier FROM subscribers ORDER BY 1").fetchall()
    assert [c for (c,) in got] == sorted(["china_mobile", "china_unicom", "china_telecom",
                                          "china_broadnet"])


def test_a_nested_column_rejects_every_row_it_spoils(warehouse, tmp_path):
    # Given plans whose tier column is a struct
    rows = sample_rows()["plans"]
    table = pa.Table.from_pylist(rows).set_column(
        2, "tier", pa.array([{"a": 1}, {"a": 2}]))
    pq.write_table(table, tmp_path / "plans.parquet")
    # When imported / Then the file is refused, no table is made, and each row says why
    with pytest.raises(_importer.ImportRefused, match="2 of 2 rows rejected") as refused:
        import_table(warehouse, table="plans", path=tmp_path / "plans.parquet",
                     rejects_dir=tmp_path)
    report = refused.value.report
    assert report.problems == {"tier: not a valid integer (int8)": 2}
    assert report.rejects_path.exists()
    assert not warehouse.has_table("plans")

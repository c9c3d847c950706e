"""Exporting the DuckDB warehouse to Parquet for ``--spark`` (no Spark needed here)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import tiny

from jingxin.data.warehouse.connection import export_parquet, open_duckdb
from jingxin.errors import WarehouseError


@pytest.fixture
def wh_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    wh = open_duckdb(path)
    tiny.load(wh)
    wh.close()
    return path


def test_every_table_is_exported_with_its_rows(wh_file, tmp_path):
    out = export_parquet(wh_file, tmp_path / "export")
    for name, table in tiny.tables().items():
        assert pq.read_table(out / f"{name}.parquet").num_rows == table.num_rows


def test_an_unchanged_file_reuses_the_export_and_a_changed_one_does_not(wh_file, tmp_path):
    # Given an export
    out = export_parquet(wh_file, tmp_path / "export")
    first = (out / "subscribers.parquet").stat().st_mtime_ns
    # When exported again from the same file: the files stay as they were
    export_parquet(wh_file, out)
    assert (out / "subscribers.parquet").stat().st_mtime_ns == first
    # When the warehouse changes: the export is written again, with the new table
    wh = open_duckdb(wh_file)
    wh.con.raw_sql("CREATE TABLE extra AS SELECT 1 AS x")
    wh.close()
    export_parquet(wh_file, out)
    assert (out / "extra.parquet").exists()


def test_a_missing_warehouse_file_is_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match="no DuckDB warehouse at .*missing.duckdb"):
        export_parquet(tmp_path / "missing.duckdb", tmp_path / "export")

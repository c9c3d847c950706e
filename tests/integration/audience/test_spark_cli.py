"""``jingxin audience ... --spark`` end to end: PySpark local mode finds the warehouse's
tables (exported from the DuckDB file, or read from ``warehouse.parquet_dir``) and counts
what DuckDB counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jingxin.cli import app

pytestmark = pytest.mark.spark

TINY = Path(__file__).parents[2] / "unit" / "audience" / "tiny.py"
runner = CliRunner()


def _tiny():
    spec = importlib.util.spec_from_file_location("audience_tiny_cli", TINY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args) -> str:
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output.strip()


@pytest.fixture(scope="module")
def wh_file(spark_session, tmp_path_factory):
    from jingxin.data.warehouse.connection import open_duckdb

    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    wh = open_duckdb(path)
    _tiny().load(wh)
    wh.close()
    run("audience", "features", "--warehouse", path)  # in DuckDB, as of 2024-07-01
    return path


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "pudong-data.yaml"
    path.write_text("name: pudong-data\nwhere: {any: [{field: home_district, op: eq, "
                    "value: 浦东新区}, {field: product_preference, op: eq, "
                    "value: data_heavy}]}\n")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("JINGXIN_HOME", str(tmp_path))
    monkeypatch.delenv("JINGXIN_WAREHOUSE__PARQUET_DIR", raising=False)
    return tmp_path


def test_spark_counts_what_duckdb_counts(wh_file, spec, home):
    # Given a DuckDB warehouse with features / When the same spec is counted on both
    duck = run("audience", "count", spec, "--warehouse", wh_file)
    spark = run("audience", "count", spec, "--warehouse", wh_file, "--spark")
    # Then Spark found the tables (exported under the var dir) and the same subscribers
    assert duck == spark
    assert int(duck) > 0
    assert (home / "var" / "spark" / "features.parquet").exists()


def test_spark_reads_the_parquet_dir_setting(wh_file, spec, home, monkeypatch):
    from jingxin.data.warehouse.connection import export_parquet

    # Given the warehouse as a folder of <table>.parquet, named in the settings
    folder = export_parquet(wh_file, home / "lake")
    monkeypatch.setenv("JINGXIN_WAREHOUSE__PARQUET_DIR", str(folder))
    # When the spec is counted with --spark and no --warehouse
    spark = run("audience", "count", spec, "--spark")
    # Then Spark read that folder (nothing exported) and counts what DuckDB counts
    assert spark == run("audience", "count", spec, "--warehouse", wh_file)
    assert not (home / "var" / "spark").exists()

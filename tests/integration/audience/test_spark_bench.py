"""The ``*-spark`` audience benchmarks at a tiny scale: each runs the same expression on
PySpark local mode and DuckDB and finds the same rows.

Here rather than in tests/unit because a Spark session (a JVM over loopback) is started;
they share it with the other Spark tests (conftest.py). ``audience-features-spark`` is
left to ``jingxin bench``: it runs the same comparison (``_spark_run``) as these two, and
test_spark_parity.py proves the features themselves equal on both engines; it was the
slowest test of the suite (~75 s on two busy cores).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jingxin.cli import app

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _test_session(spark_session):
    """The benchmarks' open_pyspark() reuses the tests' session (conftest.py)."""


def bench(name: str, scale: int) -> dict:
    result = CliRunner().invoke(app, ["bench", name, "--scale", str(scale)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.output.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["planfit-spark", "resident-cells-spark"])
def test_spark_benchmark_finds_the_same_rows_as_duckdb(name):
    # Given a tiny synthetic operator / When the benchmark runs on both engines
    figures = bench(name, 150)
    # Then both computed something, in the same rows
    assert figures["duckdb_rows"] > 0
    assert figures["spark_rows"] == figures["duckdb_rows"]
    assert figures["rows_only_in_duckdb"] == figures["rows_only_in_spark"] == 0
    assert figures["same_result"] is True
    assert figures["spark_s"] > 0 and figures["duckdb_s"] > 0

"""The one Spark session of the audience integration tests.

Created here, before any test starts Spark another way: ``open_pyspark()`` (the CLI, the
benchmarks) calls ``getOrCreate`` and so reuses it, with its warehouse folder in a
temporary directory rather than ``spark-warehouse/`` in the working directory (static
Spark settings cannot change once a session exists).
"""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("PySpark needs Java")
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    where = tmp_path_factory.mktemp("spark-warehouse")
    return (SparkSession.builder.master("local[1]").appName("jingxin-tests")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.warehouse.dir", str(where)).getOrCreate())


@pytest.fixture(scope="module", autouse=True)
def _fresh_tables(spark_session):
    """Each test module starts without the tables an earlier one registered (the CLI and
    the benchmarks register theirs as temporary views of the shared session)."""
    for table in spark_session.catalog.listTables():
        if table.isTemporary:
            spark_session.catalog.dropTempView(table.name)

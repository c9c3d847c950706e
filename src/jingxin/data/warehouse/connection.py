"""Opening the warehouse: an Ibis backend over DuckDB (default) or PySpark.

Everything above this module reads warehouse tables through :class:`Warehouse`, so that
one expression runs unchanged on either engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jingxin.errors import WarehouseError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.config import WarehouseSettings


@dataclass
class Warehouse:
    """An open warehouse: ``con`` is the Ibis backend."""

    con: Any
    backend: str

    def table(self, name: str) -> ir.Table:
        try:
            return self.con.table(name)
        except Exception as exc:  # each backend raises its own "no such table"
            from jingxin.data.warehouse.schema import TABLES

            from ibis.common.exceptions import TableNotFound

            text = str(exc)
            missing = isinstance(exc, TableNotFound) or any(
                words in text.lower() for words in ("not found", "does not exist", "cannot be found"))
            if not missing:
                # Not a missing table (a busy connection, a broken file): say what it was.
                raise WarehouseError(f"cannot open warehouse table {name!r}: {text}") from exc
            hint = " (run `jingxin import` or `jingxin synth` first)" if name in TABLES else ""
            raise WarehouseError(f"warehouse table {name!r} is missing{hint}") from exc

    def has_table(self, name: str) -> bool:
        # Asks for the table itself: Ibis 12's list_tables() calls a method DuckDB 2
        # removed (fetch_arrow_table), so it fails on every call.
        try:
            self.con.table(name)
        except Exception:
            return False
        return True

    def close(self) -> None:
        disconnect = getattr(self.con, "disconnect", None)
        if disconnect is not None:
            disconnect()


def open_duckdb(path: str | Path = ":memory:", *, threads: int | None = None,
                memory_limit: str | None = None, read_only: bool = False) -> Warehouse:
    import ibis

    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        con = ibis.duckdb.connect(str(path), read_only=read_only, **config)
    except Exception as exc:
        raise WarehouseError(f"cannot open the DuckDB warehouse at {path}: {exc}") from exc
    return Warehouse(con=con, backend="duckdb")


def open_pyspark(session: Any | None = None) -> Warehouse:
    """A warehouse over a Spark session (local mode when none is given)."""
    import ibis

    try:
        if session is None:
            from pyspark.sql import SparkSession

            session = (
                SparkSession.builder.master("local[2]")
                .appName("jingxin")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.ui.enabled", "false")
                .getOrCreate()
            )
        con = ibis.pyspark.connect(session)
    except Exception as exc:
        raise WarehouseError(f"cannot start the PySpark warehouse: {exc}") from exc
    return Warehouse(con=con, backend="pyspark")


def open_warehouse(settings: WarehouseSettings) -> Warehouse:
    """The warehouse the settings name (on PySpark, over ``parquet_dir`` when set)."""
    if settings.backend == "pyspark":
        spark = open_pyspark()
        if settings.parquet_dir:
            register_parquet(spark, Path(settings.parquet_dir))
        return spark
    return open_duckdb(settings.path, threads=settings.threads, memory_limit=settings.memory_limit)


def open_spark_over(settings: WarehouseSettings, *, duckdb_path: Path | None,
                    export_dir: Path) -> Warehouse:
    """PySpark local mode with the warehouse's tables registered, so that a spec finds
    them: a DuckDB file named on the command line (``duckdb_path``) is exported to
    Parquet under ``export_dir``; otherwise ``parquet_dir`` is read as it is (at Spark
    scale the data already lives as Parquet); otherwise the settings' DuckDB file is
    exported."""
    if duckdb_path is None and settings.parquet_dir:
        directory = Path(settings.parquet_dir)
    else:
        directory = export_parquet(duckdb_path or Path(settings.path), export_dir)
    spark = open_pyspark()
    register_parquet(spark, directory)
    return spark


def register_parquet(warehouse: Warehouse, directory: Path) -> list[str]:
    """Make each ``<table>.parquet`` in ``directory`` (one file, or a folder of part files
    as Spark writes them) a table of ``warehouse``; return the table names."""
    if not directory.is_dir():
        raise WarehouseError(f"the Parquet warehouse folder {directory} does not exist")
    paths = sorted(directory.glob("*.parquet"))
    if not paths:
        raise WarehouseError(f"no <table>.parquet in the Parquet warehouse folder {directory}")
    for path in paths:
        try:
            warehouse.con.read_parquet(str(path), table_name=path.stem)
        except Exception as exc:
            raise WarehouseError(f"cannot read {path} as table {path.stem!r}: {exc}") from exc
    return [p.stem for p in paths]


def export_parquet(duckdb_path: Path, directory: Path) -> Path:
    """Every table of the DuckDB file as ``directory/<table>.parquet``; return
    ``directory``. A cache: ``export.json`` records the file's path, size and mtime, and
    an export of the file as it still is is reused rather than written again."""
    import json
    import shutil

    import duckdb

    if not duckdb_path.is_file():
        raise WarehouseError(
            f"no DuckDB warehouse at {duckdb_path} to export for Spark (run `jingxin import`"
            " or `jingxin synth`, or set warehouse.parquet_dir)")
    stat = duckdb_path.stat()
    source = {"source": str(duckdb_path.resolve()), "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns}
    manifest = directory / "export.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == source:
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    try:
        con = duckdb.connect(str(duckdb_path), read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot open the DuckDB warehouse at {duckdb_path}: {exc}") from exc
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            " AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
        for name in names:
            target = str(directory / f"{name}.parquet").replace("'", "''")
            con.execute(f'COPY "{name}" TO \'{target}\' (FORMAT parquet)')
    finally:
        con.close()
    manifest.write_text(json.dumps(source))
    return directory

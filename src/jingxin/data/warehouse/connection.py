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
    """The warehouse the settings name."""
    if settings.backend == "pyspark":
        return open_pyspark()
    return open_duckdb(settings.path, threads=settings.threads, memory_limit=settings.memory_limit)

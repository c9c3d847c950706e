"""Warehouse tables in DuckDB as schema.py declares them: their DDL, whether an existing
table still matches its spec, and how many rows each holds."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from jingxin.data.warehouse.schema import TABLES, TableSpec
from jingxin.errors import WarehouseError

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.date32(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
    pa.bool_(): "BOOLEAN",
}


def quote(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def scalar(con: Any, sql: str) -> Any:
    """The single value a query returns. Fetches everything: DuckDB refuses other work on
    a connection while a result is left unfinished."""
    return con.execute(sql).fetchall()[0][0]


def duckdb_type(arrow_type: pa.DataType) -> str:
    try:
        return _DUCKDB_TYPES[arrow_type]
    except KeyError:
        raise WarehouseError(f"no DuckDB type for Arrow type {arrow_type}") from None


def create_sql(spec: TableSpec, *, replace: bool = False) -> str:
    """``CREATE TABLE`` for a spec: its columns, types and NOT NULLs (keys are checked by
    the importer, not by an index, which would slow bulk loads)."""
    columns = ", ".join(
        f"{quote(c.name)} {duckdb_type(c.type)}{'' if c.nullable else ' NOT NULL'}"
        for c in spec.columns
    )
    verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    return f"{verb} {quote(spec.name)} ({columns})"


def existing_columns(con: Any, name: str) -> dict[str, str] | None:
    """Column -> DuckDB type of a table in the main schema, or None when it is absent."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [name],
    ).fetchall()
    return {n: t for n, t in rows} or None


def check_matches(con: Any, spec: TableSpec) -> None:
    """Raise a :class:`WarehouseError` if the table exists with other columns or types."""
    found = existing_columns(con, spec.name)
    if found is None:
        return
    wanted = {c.name: duckdb_type(c.type) for c in spec.columns}
    if found != wanted:
        differ = sorted(set(found.items()) ^ set(wanted.items()))
        raise WarehouseError(
            f"warehouse table {spec.name!r} does not match the schema "
            f"(differs in {', '.join(f'{n} {t}' for n, t in differ)}); "
            "import with --replace to rebuild it"
        )


def row_counts(con: Any) -> dict[str, int | None]:
    """Rows in each declared table (None where the table does not exist yet)."""
    counts: dict[str, int | None] = {}
    for name in TABLES:
        if existing_columns(con, name) is None:
            counts[name] = None
        else:
            counts[name] = scalar(con, f"SELECT count(*) FROM {quote(name)}")
    return counts

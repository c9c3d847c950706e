"""Bulk inserts of Arrow tables into the store, and the Python values they bind.

The columnar bulk paths (:func:`jingxin.dispatch.outbox.enqueue_table`,
:func:`jingxin.data.store.ledger.record_contact_table`) take a table of a whole chunk
instead of an object per row. A chunk has few distinct instants and dates, and Arrow's
own ``to_pylist`` goes through the time zone database per value, so each distinct value
is converted (and, for SQLite, formatted as its text) once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, bindparam, cast, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from jingxin.errors import InputError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = pa.timestamp("us", tz="UTC")


def sqlite_time(moment: datetime) -> str:
    """An aware instant as the UTC text SQLite keeps (what the store's UtcDateTime binds):
    the ``as_text`` of :func:`python_rows` for SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def first_missing(table: pa.Table, name: str) -> int | None:
    """Index of the first row whose ``name`` is null or empty text (None: every row has
    one; a table without the column has none)."""
    if name not in table.column_names:
        return 0 if table.num_rows else None
    column = table.column(name)
    bad = pc.is_null(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        bad = pc.or_(bad, pc.equal(pc.utf8_length(column), 0))
    index = pc.index(bad, True).as_py()
    return None if index < 0 else index


def column_values(table: pa.Table, name: str, default: Any = None) -> list[Any]:
    """The column as Python values, or ``default`` for every row if it is absent."""
    if name not in table.column_names:
        return [default] * table.num_rows
    return table.column(name).to_pylist()


def instant_column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    """The column as UTC microsecond timestamps (None if absent); a column without a time
    zone is refused, as the store refuses naive datetimes."""
    if name not in table.column_names:
        return None
    column = table.column(name)
    if not pa.types.is_timestamp(column.type) or column.type.tz is None:
        raise InputError(f"{name}: expected a timestamp column with a time zone, got {column.type}")
    return column.cast(US)


def instants(
    column: pa.ChunkedArray | pa.Array, *, as_text: Callable[[datetime], str] | None = None
) -> list[datetime | str | None]:
    """Aware UTC datetimes (or their ``as_text``), each distinct instant built once."""
    return _decoded(column.cast(US), lambda us: _instant(us, as_text))


def dates(column: pa.ChunkedArray | pa.Array, *, as_text: bool = False) -> list[date | str | None]:
    """Dates (or ISO text, as SQLite keeps them), each distinct date built once."""
    return _decoded(column.cast(pa.date32()), lambda days: _date(days, as_text))


def python_rows(
    table: pa.Table, *, as_text: Callable[[datetime], str] | None = None
) -> list[tuple[Any, ...]]:
    """The table as row tuples for a DB-API ``executemany``; with ``as_text`` (SQLite),
    instants and dates become the text the store's column types would bind."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            columns.append(instants(column, as_text=as_text))
        elif pa.types.is_date(column.type):
            columns.append(dates(column, as_text=as_text is not None))
        else:
            columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def copy_csv(driver_connection: Any, *, into: str, table: pa.Table) -> None:
    """``COPY into (columns) FROM STDIN`` on a psycopg connection, the rows written as CSV
    by Arrow (quoted text, so an empty string stays one; an unquoted empty field is NULL):
    far faster than psycopg's ``write_row`` per row. Instants go as ISO text with ``Z``,
    binary columns as bytea hex text (``\\x0102``)."""
    import pyarrow.csv as pcsv

    buffer = io.BytesIO()
    table = _bytea_as_hex(table)
    pcsv.write_csv(table, buffer, pcsv.WriteOptions(include_header=False, quoting_style="needed"))
    columns = ", ".join(table.column_names)
    with driver_connection.cursor() as cursor, cursor.copy(
        f"COPY {into} ({columns}) FROM STDIN (FORMAT csv)"
    ) as copy:
        copy.write(buffer.getbuffer())


def load_temp(connection: Connection, *, name: str, definition: str, table: pa.Table) -> None:
    """Fill the PostgreSQL temporary table ``name`` with ``table``'s rows by COPY: created
    on first use in the session as ``definition`` (its columns, or ``LIKE other``), emptied
    at every commit and before each load (an earlier one in the same transaction).

    Two round trips: the create-if-missing and the emptying go as one statement, and the
    emptying is a DELETE - almost free on the table a commit left empty, where TRUNCATE
    gives the table new files every time (~2.5 ms a load; a second load in one transaction
    leaves dead rows instead, gone at its commit)."""
    connection.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} {definition} "
                               f"ON COMMIT DELETE ROWS; DELETE FROM {name}")  # fmt: skip
    with _driver_errors(connection, f"COPY {name}"):
        copy_csv(connection.connection.driver_connection, into=name, table=table)


def insert_new(connection: Connection, *, into: str, table: pa.Table,
               key: str = "idempotency_key") -> int:  # fmt: skip
    """Insert ``table``'s rows into ``into`` (its columns by name), skipping each whose
    ``key`` is there already; returns how many were new. PostgreSQL: COPY into a temporary
    copy of the table, then one ``INSERT ... SELECT``. SQLite: one ``executemany`` with the
    instants as the text the store keeps (see :func:`sqlite_time`)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(text(_load_and_insert(connection, into, table, key))).rowcount
    raw = connection.connection.driver_connection
    before = raw.total_changes
    _insert_many(connection, into, table, key)
    return raw.total_changes - before


def insert_returning(connection: Connection, *, into: str, table: pa.Table,
                     returning: Sequence[str], key: str = "idempotency_key") -> list[tuple]:  # fmt: skip
    """:func:`insert_new`, answering the ``returning`` columns of each row that was new
    (keep them to plain ids and keys: SQLite answers them as stored). PostgreSQL: the same
    COPY and one ``INSERT ... SELECT ... RETURNING``. SQLite: the same ``executemany``,
    then the new rows are the last ones by rowid - the transaction holds SQLite's one write
    lock from its first insert, so no other writer's row can be among them."""
    wanted = ", ".join(returning)
    if connection.dialect.name == "postgresql":
        statement = f"{_load_and_insert(connection, into, table, key)} RETURNING {wanted}"
        return [tuple(row) for row in connection.execute(text(statement))]
    raw = connection.connection.driver_connection
    before = raw.total_changes
    _insert_many(connection, into, table, key)
    new = raw.total_changes - before
    if not new:
        return []
    rows = connection.exec_driver_sql(f"SELECT {wanted} FROM {into} ORDER BY rowid DESC LIMIT ?", (new,))
    return [tuple(row) for row in rows][::-1]


def _load_and_insert(connection: Connection, into: str, table: pa.Table, key: str) -> str:
    """PostgreSQL: COPY ``table`` into ``<into>_load``; the INSERT that moves what is new."""
    columns = ", ".join(table.column_names)
    load = f"{into}_load"
    load_temp(connection, name=load, definition=f"(LIKE {into} INCLUDING DEFAULTS)", table=table)
    return f"INSERT INTO {into} ({columns}) SELECT {columns} FROM {load} ON CONFLICT ({key}) DO NOTHING"


def _insert_many(connection: Connection, into: str, table: pa.Table, key: str) -> None:
    """SQLite: one ``executemany`` of plain tuples, instants as the store's text."""
    columns = ", ".join(table.column_names)
    marks = ", ".join("?" for _ in table.column_names)
    connection.exec_driver_sql(
        f"INSERT INTO {into} ({columns}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING",
        python_rows(table, as_text=sqlite_time),
    )


@contextmanager
def _driver_errors(connection: Connection, doing: str) -> Iterator[None]:
    """A driver error from a call SQLAlchemy does not make (COPY) as SQLAlchemy's own, so
    callers' ``store_errors`` turn it into a StoreError like any other."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        raw = connection.connection.driver_connection
        lost = connection.dialect.is_disconnect(exc, raw, None)
        raise DBAPIError.instance(doing, None, exc, dbapi.Error, connection_invalidated=lost) from exc


def among(connection: Connection, column: Any, values: list) -> Any:
    """``column IN values``; on PostgreSQL one array parameter (:func:`in_array`), not
    thousands. (SQLite caps bound parameters: callers keep ``values`` to a few hundred there.)"""
    if connection.dialect.name != "postgresql":
        return column.in_(values)
    return in_array(column, bindparam(None, values, type_=ARRAY(column.type)))


def in_array(column: Any, parameter: Any) -> Any:
    """PostgreSQL: ``column IN (SELECT unnest(CAST(parameter AS <type>[])))`` for a
    ``parameter`` bound with an ``ARRAY`` type.

    A semi-join on the array, not ``= ANY(array)``: psycopg prepares a statement after a few
    runs, and under the generic plan PostgreSQL filtered a young table whole with ``= ANY``
    (a table the planner has no statistics for yet - the first minute of a new store),
    comparing every row with every value: 21 ms for 200 ids among 8,000 MO, growing with
    the table. The unnest join probes the index once the table has statistics, and most
    plans without them; a generic plan made while the table was all but empty can still
    hash it whole (``hall_interactions`` in an unanalysed bench store: 2 ms a call after
    20,000 MO) until the table is analysed (:mod:`jingxin.bench.statistics`)."""
    return column.in_(select(func.unnest(cast(parameter, parameter.type))))


def among_rows(connection: Connection, columns: Sequence[Any], rows: Sequence[tuple]) -> Any:
    """``(columns) IN rows`` for rows of several columns (a number and its service
    number). PostgreSQL: a semi-join on one array per column, unnested together - one
    statement text whatever the number of rows, and an index probe per row. A literal
    row list there (``(a, b) IN ((..), (..), ...)``) became an OR of hundreds of pairs
    that PostgreSQL checked against every row the index's first column matched: 38 ms
    for 200 hall sessions among 20,000, growing with the table. SQLite: the row-value
    list (callers keep it to a few hundred rows there)."""
    from sqlalchemy import String, Text, tuple_

    if connection.dialect.name != "postgresql":
        return tuple_(*columns).in_(list(rows))
    # Text as TEXT[]: a VARCHAR(n) cast would cut a longer value, and the cut one match.
    kinds = [Text() if isinstance(column.type, String) else column.type for column in columns]
    arrays = [cast(bindparam(None, [row[i] for row in rows], type_=ARRAY(kind)), ARRAY(kind))
              for i, kind in enumerate(kinds)]  # fmt: skip
    keys = (func.unnest(*arrays).table_valued(*(f"k{i}" for i in range(len(columns))))
            .render_derived())  # fmt: skip
    return tuple_(*columns).in_(select(*keys.c))


def probe(table: Any, keys: Mapping[str, Any], *, name: str) -> tuple[Any, Any]:
    """PostgreSQL: the rows of ``table`` whose ``keys`` columns hold the values of the
    array parameters given (every combination of them), read by one index probe per
    combination whatever the planner's statistics say: ``unnest(:values) AS k JOIN LATERAL
    (SELECT * FROM table WHERE column = k.value OFFSET 0)``. (The rows, the FROM to
    select them from.)

    Why: as a semi-join (:func:`in_array`) the planner may hash the whole table, and does
    when its plan is made while the table is young - psycopg prepares a statement after
    its fifth run and PostgreSQL keeps that generic plan: the MO handlers' pending read
    scanned mo_messages whole (3.7 ms at 27,000 MO, growing), the policy state opt_outs
    (2.7 ms at 14,000). ``OFFSET 0`` keeps the lateral from being flattened into such a
    join. ``name`` prefixes the aliases (a statement may probe one table twice)."""
    from sqlalchemy import true

    joined: Any = None
    wanted = []
    for n, (column, parameter) in enumerate(keys.items()):
        values = (func.unnest(cast(parameter, parameter.type)).table_valued("value")
                  .render_derived(name=f"{name}_k{n}"))  # fmt: skip
        wanted.append(table.c[column] == values.c.value)
        joined = values if joined is None else joined.join(values, true())
    rows = select(table).where(*wanted).offset(literal_column("0")).lateral(f"{name}_rows")
    return rows, joined.join(rows, true())


def _bytea_as_hex(table: pa.Table) -> pa.Table:
    """Binary columns as PostgreSQL's bytea hex input (Arrow's CSV writer takes text only)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            hexed = [None if v is None else "\\x" + v.hex() for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(hexed, pa.string()))
    return table


def _instant(us: int, as_text: Callable[[datetime], str] | None) -> datetime | str:
    moment = EPOCH + timedelta(microseconds=us)
    return as_text(moment) if as_text else moment


def _date(days: int, as_text: bool) -> date | str:
    day = date(1970, 1, 1) + timedelta(days=days)
    return day.isoformat() if as_text else day


def _decoded(column: pa.ChunkedArray | pa.Array, make: Callable[[int], Any]) -> list[Any]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = column.dictionary_encode()
    physical = pa.int64() if pa.types.is_timestamp(column.type) else pa.int32()
    made = [make(v) for v in encoded.dictionary.cast(physical).to_pylist()]
    return [None if i is None else made[i] for i in encoded.indices.to_pylist()]


def unnest_arrays(table: Any, columns: Sequence[str], *, prefix: str, alias: str,
                  extra: Sequence[tuple[str, str]] = ()) -> str:  # fmt: skip
    """PostgreSQL: ``unnest(CAST(:<prefix><column> AS <type>[]), ...) AS <alias>(columns)``
    - rows bound as one array per column (:func:`array_values`), so a statement has ONE
    text whatever its number of rows and psycopg and the server prepare it once. Text
    columns are cast to ``TEXT[]`` (a ``VARCHAR(n)`` cast would cut a long value where
    the insert would refuse it); JSON is bound as its text. ``extra``: more (name, type)."""
    from sqlalchemy import JSON, String
    from sqlalchemy.dialects import postgresql

    def kind(column: Any) -> str:
        if isinstance(column.type, String):
            return "TEXT"
        if isinstance(column.type, JSON):
            return "JSONB"
        return str(column.type.compile(dialect=postgresql.dialect()))

    typed = [(name, kind(table.c[name])) for name in columns] + list(extra)
    arrays = ", ".join(f"CAST(:{prefix}{name} AS {t}[])" for name, t in typed)
    return f"unnest({arrays}) AS {alias}({', '.join(name for name, _ in typed)})"


def array_values(rows: Sequence[dict[str, Any]], columns: Sequence[str], *,
                 prefix: str, json: Sequence[str] = ()) -> dict[str, list[Any]]:  # fmt: skip
    """The bound arrays of :func:`unnest_arrays`: one list per column (``json`` columns
    as their JSON text)."""
    import json as json_

    out = {prefix + c: [row[c] for row in rows] for c in columns}
    for c in json:
        out[prefix + c] = [None if v is None else json_.dumps(v, default=str) for v in out[prefix + c]]
    return out

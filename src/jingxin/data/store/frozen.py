"""A hot statement built and compiled once, then run by its SQL text.

SQLAlchemy caches a statement's compiled SQL, but each execution still pays for the
statement object: building it (a few hundred coercions for the MO handlers' pending read
with its attribution and its data-modifying ``WITH`` parts) and walking it again to find
its cache key. For a statement a worker runs a hundred times a second with only its
parameters changing, that was the larger part of its cost: the pending read took 1.2 ms
of Python around 0.5 ms of PostgreSQL (pyinstrument over a handler batch; BENCHMARKS.md,
"The way back, a fourth time"). A statement built once and reused gains nothing here:
SQLAlchemy's walk of it is cheap then (the policy state's union: 0.85 ms either way).

:class:`Frozen` builds the statement once (with named :func:`~sqlalchemy.bindparam`
placeholders for what changes), compiles it once per dialect, and then hands the SQL text
and the parameters to the driver (``exec_driver_sql``: still SQLAlchemy's connection,
events and error wrapping, so ``store_errors`` works as before). The parameters go
through the same bind processors SQLAlchemy would apply (a naive datetime is refused, an
aware one bound as UTC) and the result columns through the same result processors (a
timestamp comes back aware UTC). Why not SQLAlchemy's own ``lambda_stmt``, which aims at
the same cost: it caches by the lambda's code and tracks the variables of its closure,
while these statements are built by helper functions from settings (the attribution
window, the channels' default senders) that it would have to see through.

A statement whose SQL depends on its values (``IN`` lists expanded at execution,
``literal_execute``) cannot be frozen: :class:`Frozen` refuses it when it compiles.

Several independent reads can go in one round trip (:func:`run_reads`): on PostgreSQL
they are sent together in the driver's pipeline mode and their answers read after, where
one after the other each waited for its answer before the next was sent. A hall batch
reads its earlier answers, its sessions, its senders' accounts and the catalogue before
it answers anything; under load each of those round trips was a wait for PostgreSQL and
then for a core again (BENCHMARKS.md, "The way back, a sixth time").
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect


class Frozen:
    """``build()`` (a statement over named bind parameters), compiled once per dialect.

    :meth:`all` runs it and returns its rows as named tuples (the statement's column
    keys), processed as SQLAlchemy would."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._by_dialect: dict[str, _Compiled] = {}

    def all(self, connection: Connection, **params: Any) -> list[Any]:
        compiled = self._compiled(connection.dialect)
        result = connection.exec_driver_sql(compiled.sql, compiled.bind(params))
        return compiled.rows(result.fetchall())

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _Compiled(self._build(), dialect)
        return compiled


@dataclass(frozen=True, slots=True)
class Read:
    """One read for :func:`run_reads`: a frozen statement, its parameters, and what to
    make of its rows (``finish(rows)``: by default the rows themselves)."""

    frozen: Frozen
    params: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[list[Any]], Any] = list


def run_reads(connection: Connection, reads: Sequence[Read]) -> list[Any]:
    """The answers of ``reads`` (``finish`` of each one's rows), in their order. On
    PostgreSQL, two or more go to the server together (psycopg's pipeline mode: one round
    trip) on ``connection``, in its transaction if it is in one; elsewhere one by one. A
    failure is SQLAlchemy's error, as from ``Connection.execute`` (``store_errors`` reads
    it), and a connection the failure broke is invalidated."""
    if connection.dialect.name != "postgresql" or len(reads) < 2:
        return [read.finish(read.frozen.all(connection, **read.params)) for read in reads]
    import psycopg
    from sqlalchemy.exc import DBAPIError

    compiled = [(read.frozen._compiled(connection.dialect), read) for read in reads]
    bound = [(c.sql, c.bind(read.params)) for c, read in compiled]
    raw = connection.connection.driver_connection  # psycopg's, in SQLAlchemy's transaction
    try:
        with raw.pipeline():
            cursors = []
            for sql, params in bound:
                cursor = raw.cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
        fetched = [cursor.fetchall() for cursor in cursors]
    except psycopg.Error as exc:
        broken = bool(raw.broken or raw.closed)
        if broken:
            connection.invalidate(exc)
        sql, params = bound[0]
        raise DBAPIError.instance(sql, params, exc, psycopg.Error,
                                  connection_invalidated=broken) from exc  # fmt: skip
    return [read.finish(c.rows(rows)) for (c, read), rows in zip(compiled, fetched, strict=True)]


class _Compiled:
    """One dialect's SQL text, its parameters' defaults and processors, and the row type."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        if dialect.paramstyle not in ("pyformat", "named"):
            raise ValueError(f"a frozen statement needs named parameters; {dialect.name} "
                             f"uses {dialect.paramstyle}")  # fmt: skip
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement whose SQL depends on its values cannot be frozen")
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        # SQLAlchemy's own per-parameter processors (internal, stable across 2.x): what
        # ``Connection.execute`` would apply to these values.
        self.processors = {name: fn for name, fn in compiled._bind_processors.items()
                           if name in self.defaults}  # fmt: skip
        columns = list(getattr(statement, "selected_columns", ()))
        self.results = [column.type._cached_result_processor(dialect, None) for column in columns]
        self.row = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None  # type: ignore[misc]

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = params.keys() - self.defaults.keys()
        if unknown:
            raise TypeError(f"the frozen statement has no parameter {sorted(unknown)}")
        values = {**self.defaults, **params}
        for name, process in self.processors.items():
            values[name] = process(values[name])
        return values

    def rows(self, fetched: list[Any]) -> list[Any]:
        if self.row is None:
            return list(fetched)
        make, processors = self.row._make, self.results
        if not any(processors):
            return [make(row) for row in fetched]
        return [make(value if process is None else process(value)
                     for process, value in zip(processors, row, strict=True))
                for row in fetched]  # fmt: skip

"""Importing CSV and Parquet files into the warehouse, validated against schema.py.

One import: open the file (:mod:`.source`), check its header, normalise phone numbers
(:mod:`jingxin.data.msisdn`), run the row checks in DuckDB (:mod:`.checks`, :mod:`.keys`),
write every bad row to a rejects file (:mod:`.rejects`), then load the good rows in one
transaction, so a failure leaves the table as it was. A file with no good row, or with more
rejects than ``max_reject_share`` of its rows, is refused (:class:`ImportRefused`) before
anything is written: an import never leaves half a file in the table. Extra columns are reported and
ignored; a missing non-nullable column makes the whole file unusable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from jingxin.data.warehouse import keys, rejects, tables
from jingxin.data.warehouse.checks import SRC, CheckPlan, msisdn_relation, plan_checks
from jingxin.data.warehouse.connection import Warehouse
from jingxin.data.warehouse.schema import TableSpec, table_spec
from jingxin.data.warehouse.source import SourceFile, open_source
from jingxin.errors import ImportFileError, JingxinError, WarehouseError

TYPED = "__import_typed"
BAD = "__import_bad"
REJECTED = "__import_rejected"
DEFAULT_REJECTS_DIR = Path("var/rejects")
DEFAULT_MAX_REJECT_SHARE = 0.05  # [warehouse] max_reject_share

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImportReport:
    """What one import did. ``problems`` counts ``"field: reason"``; a row with two
    problems counts in both but once in ``rows_rejected``."""

    table: str
    path: Path
    format: str
    mode: str  # "append" or "replace"
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_in_table: int
    problems: dict[str, int] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()
    absent_columns: tuple[str, ...] = ()  # nullable columns the file lacks: loaded as null
    recomputed_columns: tuple[str, ...] = ()  # derived columns the file has: recomputed
    rejects_path: Path | None = None
    seconds: float = 0.0


class ImportRefused(ImportFileError):
    """Too many rows of a file were rejected: nothing was loaded. ``report`` says what was
    found (its ``rows_loaded`` is 0) and where the rejects file is."""

    def __init__(self, message: str, *, report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def duckdb_connection(warehouse: Warehouse) -> Any:
    """The raw DuckDB connection under the Ibis backend (imports need DuckDB)."""
    if warehouse.backend != "duckdb":
        raise WarehouseError(
            f"imports and table listings need the DuckDB warehouse; this one runs on "
            f"{warehouse.backend} (pass --warehouse PATH for a DuckDB file)")
    return warehouse.con.con


def import_table(warehouse: Warehouse, *, table: str, path: Path | str,
                 rejects_dir: Path | str | None = None, replace: bool = False,
                 allow_foreign: bool = False, progress: Progress | None = None,
                 max_reject_share: float = DEFAULT_MAX_REJECT_SHARE,
                 encoding: str | None = None) -> ImportReport:
    """Validate ``path`` against ``table``'s spec and load its good rows; see the module.
    Too many rejects (:func:`check_rejects`) raise :class:`ImportRefused` and load nothing."""
    con = duckdb_connection(warehouse)
    return import_into(con, table=table, path=path, rejects_dir=rejects_dir, replace=replace,
                       allow_foreign=allow_foreign, progress=progress,
                       max_reject_share=max_reject_share, encoding=encoding,
                       own_transaction=True)


def import_into(con: Any, *, table: str, path: Path | str, rejects_dir: Path | str | None,
                replace: bool, allow_foreign: bool, progress: Progress | None,
                max_reject_share: float, encoding: str | None,
                own_transaction: bool) -> ImportReport:
    """One import on a DuckDB connection. ``own_transaction=False``: the caller holds the
    transaction (``import-dir`` loads every file in one) and rolls it back on any error."""
    started = time.perf_counter()
    spec = table_spec(table)
    con.execute("SET enable_progress_bar = false")  # DuckDB's own bar would print to stdout
    say = progress or (lambda _stage: None)
    say(f"reading {Path(path).name}")
    source = open_source(con, Path(path), encoding=encoding)
    try:
        extra, absent = _check_header(spec, source)
        if not replace:
            tables.check_matches(con, spec)
        _normalise_msisdns(con, spec, source, allow_foreign=allow_foreign, say=say)
        say("validating rows")
        _find_problems(con, spec, source, replace=replace)
        bad_rows = rejects.rejected_rows(con) + len(source.malformed)
        rejects_file = None
        if bad_rows:
            say("writing rejects")
            rejects_file = rejects.rejects_path(Path(rejects_dir or DEFAULT_REJECTS_DIR),
                                                spec.name, source.path)
            rejects.write_rejects(con, source, rejects_file)
        problems = rejects.problem_counts(con)
        if source.malformed:
            problems["(record): wrong number of fields"] = len(source.malformed)
        report = ImportReport(
            table=spec.name, path=source.path, format=source.format,
            mode="replace" if replace else "append",
            rows_read=source.rows + len(source.malformed), rows_loaded=0,
            rows_rejected=bad_rows, rows_in_table=0, problems=problems,
            extra_columns=extra, absent_columns=absent,
            recomputed_columns=tuple(c for c in spec.derived if c in source.columns),
            rejects_path=rejects_file)
        check_rejects(report, max_share=max_reject_share)
        say(f"loading {spec.name}")
        loaded = _load(con, spec, replace=replace, filter_rejected=bad_rows > 0,
                       own_transaction=own_transaction)
        in_table = tables.scalar(con, f"SELECT count(*) FROM {tables.quote(spec.name)}")
    finally:
        _drop_temporaries(con, spec, source)
    return replace_fields(report, rows_loaded=loaded, rows_in_table=in_table,
                          seconds=time.perf_counter() - started)


def check_rejects(report: ImportReport, *, max_share: float) -> None:
    """Refuse an import that would load nothing, or whose rejects exceed ``max_share`` of
    the rows read: half a file in the table is worse than none (a ``--replace`` would empty
    it), so the table stays as it was and the person fixes the file."""
    rejected, read = report.rows_rejected, report.rows_read
    if not rejected:
        return
    share = rejected / read
    if rejected < read and share <= max_share:
        return
    why = ("no row is good" if rejected == read
           else f"more than the {max_share:.1%} allowed")
    top = next(iter(report.problems), None)
    mostly = f", mostly {top!r}" if top else ""
    allow = ("" if rejected == read else
             " (allow more with --max-rejects SHARE or the warehouse.max_reject_share"
             " setting)")
    raise ImportRefused(
        f"{report.path}: import into {report.table} refused: {rejected:,} of {read:,} rows "
        f"rejected ({share:.1%}, {why}){mostly}; nothing loaded, the table is as it was; "
        f"rejects: {report.rejects_path}{allow}", report=report)


def _check_header(spec: TableSpec, source: SourceFile) -> tuple[tuple[str, ...], tuple[str, ...]]:
    present = set(source.columns)
    required = [c.name for c in spec.columns if not c.nullable and c.name not in spec.derived]
    missing = [name for name in required if name not in present]
    if missing:
        raise ImportFileError(
            f"{source.path}: missing column(s) {', '.join(missing)} required by table "
            f"{spec.name!r} (the file has: {', '.join(source.columns) or 'none'})"
        )
    extra = tuple(c for c in source.columns if c not in spec.names)
    absent = tuple(c.name for c in spec.columns
                   if c.nullable and c.name not in present and c.name not in spec.derived)
    return extra, absent


def _normalise_msisdns(con: Any, spec: TableSpec, source: SourceFile, *,
                       allow_foreign: bool, say: Progress) -> None:
    """Register (``__row``, e164, carrier, reason) for each MSISDN column; the checks join
    it on ``__row``. (Carrying the whole source through Arrow instead, to spare the
    join, measured slower: DuckDB reads Parquet faster than a registered Arrow table.)"""
    from jingxin.data.msisdn import normalise_msisdns

    for column in spec.msisdn_columns:
        say(f"normalising {column}")
        values = con.sql(
            f"SELECT __row, CAST({tables.quote(column)} AS VARCHAR) AS v "
            f"FROM {source.relation}").to_arrow_table()
        result = normalise_msisdns(values.column("v"), allow_foreign=allow_foreign)
        con.register(msisdn_relation(column), pa.table({
            "__row": values.column("__row"), "e164": result.e164,
            "carrier": result.carrier, "reason": result.reason}))


def _find_problems(con: Any, spec: TableSpec, source: SourceFile, *, replace: bool) -> None:
    """Fill the problems table; file content no check can read is an ImportFileError."""
    import duckdb

    plan = plan_checks(spec, source.columns)
    try:
        _run_checks(con, spec, source, plan, replace=replace)
    except duckdb.Error as exc:  # e.g. a nested Parquet column that no cast can read
        raise ImportFileError(
            f"{source.path}: cannot check the file against table {spec.name!r}: {exc}"
        ) from exc


def _run_checks(con: Any, spec: TableSpec, source: SourceFile, plan: CheckPlan, *,
                replace: bool) -> None:
    origin = f"{source.relation} {SRC} {' '.join(plan.joins)}"
    typed = ", ".join(f"{expr} AS {tables.quote(name)}" for name, expr in plan.typed.items())
    con.execute(f"CREATE OR REPLACE TEMP VIEW {TYPED} AS SELECT {SRC}.__row, {typed} "
                f"FROM {origin}")
    rejects.create_problems_table(con)
    if plan.checks:
        flags = ", ".join(f"({c.condition}) AS __c{i}" for i, c in enumerate(plan.checks))
        any_bad = " OR ".join(f"({c.condition})" for c in plan.checks)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {BAD} AS SELECT {SRC}.__row, {flags}, "
                    f"{', '.join(f'{c.reason} AS __r{i}' for i, c in enumerate(plan.checks))} "
                    f"FROM {origin} WHERE {any_bad}")
        for i, check in enumerate(plan.checks):
            con.execute(f"INSERT INTO {rejects.PROBLEMS} SELECT __row, "
                        f"'{check.field}', __r{i}, NULL FROM {BAD} WHERE __c{i}")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {BAD} (__row BIGINT)")
    appending = not replace and tables.existing_columns(con, spec.name) is not None
    keys.check_keys(con, spec, typed=TYPED, bad=BAD, against_table=appending)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {REJECTED} AS "
                f"SELECT DISTINCT __row FROM {rejects.PROBLEMS}")


def _load(con: Any, spec: TableSpec, *, replace: bool, filter_rejected: bool,
          own_transaction: bool = True) -> int:
    """Create (or rebuild) the table and insert the good rows, all in one transaction
    (the caller's, when it holds one)."""
    # Row order in the table carries no meaning; letting DuckDB write out of order is
    # about a fifth faster on big files.
    con.execute("SET preserve_insertion_order = false")
    if own_transaction:
        con.begin()
    try:
        con.execute(tables.create_sql(spec, replace=replace))
        loaded = _insert_rows(con, spec, filter_rejected=filter_rejected)
        if own_transaction:
            con.commit()
    except BaseException as exc:
        if own_transaction:
            con.rollback()
        if isinstance(exc, JingxinError) or not isinstance(exc, Exception):
            raise
        raise WarehouseError(f"loading {spec.name} failed, nothing was written: {exc}") from exc
    finally:
        con.execute("RESET preserve_insertion_order")
    return loaded


def _insert_rows(con: Any, spec: TableSpec, *, filter_rejected: bool) -> int:
    columns = ", ".join(tables.quote(c) for c in spec.names)
    where = f" WHERE __row NOT IN (SELECT __row FROM {REJECTED})" if filter_rejected else ""
    row = con.execute(
        f"INSERT INTO {tables.quote(spec.name)} ({columns}) SELECT {columns} FROM {TYPED}"
        f"{where}").fetchall()
    return int(row[0][0]) if row else 0


def _drop_temporaries(con: Any, spec: TableSpec, source: SourceFile) -> None:
    import duckdb

    steps: list[Callable[[], Any]] = [
        lambda: con.execute(f"DROP VIEW IF EXISTS {TYPED}"),
        lambda: con.execute(f"DROP TABLE IF EXISTS {BAD}"),
        lambda: con.execute(f"DROP TABLE IF EXISTS {REJECTED}"),
        lambda: con.execute(f"DROP TABLE IF EXISTS {rejects.PROBLEMS}"),
        lambda: con.execute(f"DROP VIEW IF EXISTS {source.relation}"),
    ]
    steps += [lambda c=c: con.unregister(msisdn_relation(c)) for c in spec.msisdn_columns]
    if source.format == "csv":
        steps.append(lambda: con.unregister(f"{source.relation}_arrow"))
    for step in steps:
        try:  # cleaning up must never hide the error that brought us here
            step()
        except duckdb.Error:
            pass

"""The rejects of an import: the problems table the checks fill, and the CSV file a person
reads to fix the source.

The rejects file has one line per problem, sorted by position in the source:
``line`` (CSV: physical line, header = 1) or ``row`` (Parquet: 1-based row number), then
``field``, ``reason`` and the row's original values under the source's own column names.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from jingxin.data.warehouse.source import SourceFile
from jingxin.data.warehouse.tables import quote, scalar
from jingxin.errors import ImportFileError

PROBLEMS = "__import_problems"
LINES = "__import_lines"
MALFORMED = "__import_malformed"


def create_problems_table(con: Any) -> None:
    # detail_row: a second position the reason refers to (the first copy of a duplicate).
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PROBLEMS} (__row BIGINT, field VARCHAR, "
                "reason VARCHAR, detail_row BIGINT)")


def problem_counts(con: Any) -> dict[str, int]:
    """``"field: reason" -> count`` over the problems found so far."""
    rows = con.execute(f"SELECT field, reason, count(*) FROM {PROBLEMS} "
                       "GROUP BY ALL ORDER BY 3 DESC, 1, 2").fetchall()
    return {f"{field}: {reason}": n for field, reason, n in rows}


def rejected_rows(con: Any) -> int:
    return scalar(con, f"SELECT count(DISTINCT __row) FROM {PROBLEMS}")


def rejects_path(rejects_dir: Path, table: str, source: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = rejects_dir / f"{table}-{source.stem}-{stamp}"
    path, n = base.with_suffix(".rejects.csv"), 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}.rejects.csv")
    return path


def write_rejects(con: Any, source: SourceFile, path: Path) -> None:
    """Write every problem (and every malformed CSV record) with its original values."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImportFileError(f"cannot create the rejects directory {path.parent}: "
                              f"{exc.strerror or exc}") from exc
    where = source.location_name
    originals = list(source.columns)
    values = ", ".join(f"CAST(s.{quote(c)} AS VARCHAR) AS {quote(c)}" for c in originals)
    lines = source.location_table()
    location, detail = _location_sql(con, source, lines)
    query = (
        f"SELECT {location} AS __location, p.field, "
        f"p.reason || CASE WHEN p.detail_row IS NULL THEN '' "
        f"ELSE ' (first at {where} ' || CAST({detail} AS VARCHAR) || ')' END AS reason, "
        f"{values} FROM {PROBLEMS} p JOIN {source.relation} s ON s.__row = p.__row"
        f"{_location_joins(lines)}"
    )
    if source.malformed:
        con.register(MALFORMED, _malformed_table(source))
        query += f" UNION ALL SELECT * FROM {MALFORMED}"
    ordered = (f"SELECT __location AS {quote(where)}, field, reason, * EXCLUDE "
               f"(__location, field, reason) FROM ({query}) ORDER BY __location, field")
    try:
        con.execute(f"COPY ({ordered}) TO '{_escape(str(path))}' (FORMAT csv, HEADER)")
    except Exception as exc:  # duckdb.IOException and friends
        raise ImportFileError(f"cannot write the rejects file {path}: {exc}") from exc
    finally:
        if source.malformed:
            con.unregister(MALFORMED)
        if lines is not None:
            con.unregister(LINES)


def _location_sql(con: Any, source: SourceFile, lines: pa.Table | None) -> tuple[str, str]:
    if lines is not None:
        con.register(LINES, lines)
        return "l1.__location", "l2.__location"
    offset = " + 1" if source.format == "csv" else ""
    return f"p.__row{offset}", f"p.detail_row{offset}"


def _location_joins(lines: pa.Table | None) -> str:
    if lines is None:
        return ""
    return (f" JOIN {LINES} l1 ON l1.__row = p.__row"
            f" LEFT JOIN {LINES} l2 ON l2.__row = p.detail_row")


def _malformed_table(source: SourceFile) -> pa.Table:
    names = list(source.columns)
    data: dict[str, list[Any]] = {"__location": [], "field": [], "reason": []}
    data.update({n: [] for n in names})
    for record in source.malformed:
        data["__location"].append(record.line)
        data["field"].append("")
        data["reason"].append(f"expected {record.expected} fields, got {record.actual}")
        for i, name in enumerate(names):
            data[name].append(record.values[i] if i < len(record.values) else None)
    types = {"__location": pa.int64()}
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in data.items()})


def _escape(text: str) -> str:
    return text.replace("'", "''")

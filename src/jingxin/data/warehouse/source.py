"""An import file opened for validation: CSV (with a header) or Parquet, recognised by its
content, exposed to DuckDB as a relation with a ``__row`` column.

``__row`` is 1-based: the row number in a Parquet file, the record number in a CSV file.
:meth:`SourceFile.locations` turns record numbers into the physical line numbers a person
sees in an editor (the header is line 1), which differ only when quoted values span lines,
blank lines are skipped or malformed records were dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from jingxin.data import textfile
from jingxin.data.warehouse.tables import scalar
from jingxin.errors import ImportFileError

PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024
ENCODING_OPTION = "--encoding"


@dataclass(frozen=True)
class MalformedRecord:
    """A CSV record with the wrong number of fields: it cannot be read column by column."""

    line: int
    expected: int
    actual: int
    values: tuple[str, ...]


@dataclass
class SourceFile:
    """An opened import file. ``relation`` names a DuckDB view with ``__row`` plus the
    file's columns (``columns`` maps them to DuckDB type names)."""

    path: Path
    format: str  # "csv" or "parquet"
    relation: str
    columns: dict[str, str]
    rows: int
    malformed: list[MalformedRecord] = field(default_factory=list)
    _lines: np.ndarray | None = None  # record number -> physical line, when not simple

    @property
    def location_name(self) -> str:
        return "line" if self.format == "csv" else "row"

    def location(self, row: int) -> int:
        """The line (CSV) or row (Parquet) a person looks for, from ``__row``."""
        if self.format == "parquet":
            return row
        if self._lines is None:
            return row + 1
        return int(self._lines[row - 1])

    def location_table(self) -> pa.Table | None:
        """``__row`` -> line for CSV files whose lines are not simply record + 1."""
        if self._lines is None:
            return None
        return pa.table({"__row": np.arange(1, len(self._lines) + 1, dtype=np.int64),
                         "__location": self._lines.astype(np.int64)})


def open_source(con: Any, path: Path, *, relation: str = "__import_src",
                encoding: str | None = None) -> SourceFile:
    """Open ``path`` as CSV or Parquet for ``con`` (a duckdb connection), or raise an
    :class:`ImportFileError` saying why it cannot be read. A CSV file must be UTF-8
    unless ``encoding`` names its codec (it is transcoded while read)."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if not path.is_file():
        raise ImportFileError(f"{path}: not a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise ImportFileError(f"{path}: the file is empty")
    if head.startswith(PARQUET_MAGIC):
        return _open_parquet(con, path, relation)
    if encoding:
        codec = textfile.encoding_name(encoding, error=ImportFileError)
    elif b"\x00" in head and textfile.guess_encoding(head) != "UTF-16":
        raise ImportFileError(
            f"{path}: neither a Parquet file nor UTF-8 CSV text (binary content)")
    else:
        codec = textfile.check_encoding(path, what="CSV file", error=ImportFileError,
                                        encoding_option=ENCODING_OPTION)
    return _open_csv(con, path, relation, codec)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _open_parquet(con: Any, path: Path, relation: str) -> SourceFile:
    import duckdb

    scan = f"read_parquet({_sql_string(str(path))}, file_row_number = true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {relation} AS "
            f"SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS __row FROM {scan}"
        )
        rows = scalar(con, f"SELECT count(*) FROM {relation}")
    except duckdb.Error as exc:
        raise ImportFileError(f"{path}: not a readable Parquet file: {exc}") from exc
    columns = {name: dtype for name, dtype, *_ in described if name != "file_row_number"}
    if rows == 0:
        raise ImportFileError(f"{path}: the Parquet file has no rows")
    return SourceFile(path=path, format="parquet", relation=relation, columns=columns,
                      rows=rows)


def _text_codec(codec: str) -> str:
    return "utf-8-sig" if codec == "utf-8" else codec


def _csv_header(path: Path, codec: str) -> list[str]:
    try:
        with path.open(encoding=_text_codec(codec), newline="") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: line 1: not valid {codec} text: {exc.reason}") from None
    names = [h.strip() for h in header]
    if not any(names):
        raise ImportFileError(f"{path}: line 1: no header (CSV files need a header line)")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ImportFileError(f"{path}: line 1: a header column has no name")
        if name in seen:
            raise ImportFileError(f"{path}: line 1: column {name!r} appears twice")
        seen.add(name)
    return names


def _open_csv(con: Any, path: Path, relation: str, codec: str) -> SourceFile:
    import pyarrow.csv as pacsv

    names = _csv_header(path, codec)
    malformed_seen: list[Any] = []

    def on_invalid(row: Any) -> str:
        malformed_seen.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1,
                                           encoding="utf8" if codec == "utf-8" else codec),
            parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                              invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[""], strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        if codec == "utf-8" and textfile.is_invalid_utf8(exc):  # past the sniffed head
            with path.open("rb") as fh:
                sample = fh.read(16 << 20)  # enough to guess from; never the whole
            raise ImportFileError(textfile.not_utf8_message(
                path, sample, what="CSV file", encoding_option=ENCODING_OPTION)) from None
        raise ImportFileError(f"{path}: not a readable CSV file: {exc}") from exc
    if table.num_rows == 0 and not malformed_seen:
        raise ImportFileError(f"{path}: the CSV file has a header but no data rows")
    lines, malformed = None, []
    if malformed_seen or not _lines_are_simple(path, table.num_rows):
        lines, malformed = _scan_lines(path, len(names), codec)
    table = table.append_column("__row", pa.array(np.arange(1, table.num_rows + 1)))
    con.register(f"{relation}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM {relation}_arrow")
    return SourceFile(path=path, format="csv", relation=relation,
                      columns={n: "VARCHAR" for n in names}, rows=table.num_rows,
                      malformed=malformed, _lines=lines)


def _lines_are_simple(path: Path, records: int) -> bool:
    """True when every record is one line right after the header (line = record + 1)."""
    newlines, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            newlines += block.count(b"\n")
            last = block[-1:]
    total_lines = newlines + (0 if last == b"\n" else 1)
    return total_lines == records + 1


def _scan_lines(path: Path, width: int, codec: str) -> tuple[np.ndarray, list[MalformedRecord]]:
    """Walk the file with the csv module: the starting line of every well-formed record,
    and the malformed ones (skipped by the Arrow reader too)."""
    lines: list[int] = []
    malformed: list[MalformedRecord] = []
    with path.open(encoding=_text_codec(codec), newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != width:
                malformed.append(MalformedRecord(start, width, len(record), tuple(record)))
            elif record:
                lines.append(start)
            start = reader.line_num + 1
    return np.array(lines, dtype=np.int64), malformed


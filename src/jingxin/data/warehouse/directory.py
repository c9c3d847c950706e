"""Importing a directory of ``<table>.parquet`` / ``<table>.csv`` files (what ``jingxin
synth`` writes), table by table in dependency order: catalogues (plans, products, cells)
before the subscribers that refer to them, subscribers before their usage and events.

All or nothing: every file is loaded in ONE DuckDB transaction, so a file that fails (not
readable, too many rejects, a load error) rolls back the tables before it too, and the
warehouse is exactly as it was. Rejects files are written for every file checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jingxin.data.warehouse.connection import Warehouse
from jingxin.data.warehouse.importer import (
    DEFAULT_MAX_REJECT_SHARE,
    ImportReport,
    Progress,
    duckdb_connection,
    import_into,
)
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import ImportFileError, JingxinError

IMPORT_ORDER = (
    "plans", "products", "cells", "subscribers", "usage_monthly", "holdings",
    "location_events", "complaints", "channel_contacts", "offers", "churn_labels",
)
SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class DirectoryReport:
    reports: tuple[ImportReport, ...]
    ignored: tuple[Path, ...]  # files in the directory that name no table


def table_files(directory: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """The (table, file) pairs to import, in order, and the files that name no table."""
    if not directory.is_dir():
        raise ImportFileError(f"{directory}: not a directory")
    found: dict[str, Path] = {}
    ignored: list[Path] = []
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.suffix.lower() in SUFFIXES and path.stem in TABLES:
            if path.stem in found:
                raise ImportFileError(
                    f"{directory}: both {found[path.stem].name} and {path.name} hold table "
                    f"{path.stem!r}; keep one")
            found[path.stem] = path
        else:
            ignored.append(path)
    if not found:
        raise ImportFileError(
            f"{directory}: no <table>.parquet or <table>.csv files (tables: {', '.join(TABLES)})")
    return [(t, found[t]) for t in IMPORT_ORDER if t in found], ignored


def import_directory(warehouse: Warehouse, directory: Path | str, *,
                     rejects_dir: Path | str | None = None, replace: bool = False,
                     allow_foreign: bool = False, progress: Progress | None = None,
                     max_reject_share: float = DEFAULT_MAX_REJECT_SHARE,
                     encoding: str | None = None) -> DirectoryReport:
    """Import every table file in ``directory`` in one transaction; one report per table.
    Any failure rolls every table back and re-raises, saying that nothing was loaded."""
    pairs, ignored = table_files(Path(directory))
    con = duckdb_connection(warehouse)
    reports: list[ImportReport] = []
    con.begin()
    try:
        for table, path in pairs:
            reports.append(import_into(
                con, table=table, path=path, rejects_dir=rejects_dir, replace=replace,
                allow_foreign=allow_foreign, progress=progress,
                max_reject_share=max_reject_share, encoding=encoding, own_transaction=False))
        con.commit()
    except BaseException as exc:
        con.rollback()
        if isinstance(exc, JingxinError):
            done = f" ({', '.join(r.table for r in reports)} rolled back too)" if reports else ""
            # Same error, same class (the CLI's exit code), one line that says it all.
            exc.args = (f"{exc}; nothing from {directory} was loaded{done}",)
        raise
    return DirectoryReport(reports=tuple(reports), ignored=tuple(ignored))

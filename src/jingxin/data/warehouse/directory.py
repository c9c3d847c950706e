"""Importing a directory of ``<table>.parquet`` / ``<table>.csv`` files (what ``jingxin
synth`` writes), table by table in dependency order: catalogues (plans, products, cells)
before the subscribers that refer to them, subscribers before their usage and events.
Each table is its own transaction; a file that fails stops the run with the tables before
it loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jingxin.data.warehouse.connection import Warehouse
from jingxin.data.warehouse.importer import ImportReport, Progress, import_table
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import ImportFileError

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
                     allow_foreign: bool = False,
                     progress: Progress | None = None) -> DirectoryReport:
    """Import every table file in ``directory``; one report per table."""
    pairs, ignored = table_files(Path(directory))
    reports = [
        import_table(warehouse, table=table, path=path, rejects_dir=rejects_dir,
                     replace=replace, allow_foreign=allow_foreign, progress=progress)
        for table, path in pairs
    ]
    return DirectoryReport(reports=tuple(reports), ignored=tuple(ignored))

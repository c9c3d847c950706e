"""``jingxin import``, ``import-dir``, ``tables`` and ``summary``: loading files into the
warehouse and looking at what is there.

The warehouse is ``warehouse.path`` from the settings (default ``var/warehouse.duckdb``)
unless ``--warehouse`` names another DuckDB file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import numbers
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.data.warehouse.importer import ImportReport

console = Console(highlight=False, soft_wrap=True)

WarehouseOption = Annotated[
    Path | None,
    typer.Option("--warehouse", help="DuckDB warehouse file (default: warehouse.path "
                                     "from the settings)."),
]
RejectsOption = Annotated[
    Path | None,
    typer.Option("--rejects", help="Directory for rejects files (default: var/rejects)."),
]
ReplaceOption = Annotated[
    bool, typer.Option("--replace", help="Replace the table's rows instead of appending.")
]
ForeignOption = Annotated[
    bool, typer.Option("--allow-foreign", help="Accept valid non-Chinese mobile numbers.")
]
MaxRejectsOption = Annotated[
    str | None,
    typer.Option("--max-rejects", help="Largest share of rejected rows that still loads, "
                 "e.g. 0.05 or 5% (default: [warehouse] max_reject_share, 0.05). More "
                 "refuses the file and loads nothing."),
]
EncodingOption = Annotated[
    str | None,
    typer.Option("--encoding", help="Encoding of CSV files that are not UTF-8, e.g. gbk."),
]


def _max_reject_share(option: str | None) -> float:
    """``--max-rejects`` as a share in [0, 1] ("5%" or "0.05"), else the setting."""
    if option is None:
        from jingxin.config import load_settings

        return load_settings().warehouse.max_reject_share
    from jingxin.errors import InputError

    text = option.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise InputError(f"--max-rejects: {option!r} is not a share between 0 and 1 "
                         "(e.g. 0.05 or 5%)")
    return share


@contextlib.contextmanager
def _open(path: Path | None, *, read_only: bool = False) -> Iterator[Warehouse]:
    from jingxin.config import load_settings
    from jingxin.data.warehouse.connection import open_duckdb

    settings = load_settings().warehouse
    if path is None and settings.backend != "duckdb":
        from jingxin.data.warehouse.connection import open_warehouse

        warehouse = open_warehouse(settings)
    else:
        target = path or Path(settings.path)
        if read_only and not target.exists():
            from jingxin.errors import WarehouseError

            raise WarehouseError(f"no warehouse at {target} (run `jingxin import` first)")
        warehouse = open_duckdb(target, threads=settings.threads,
                                memory_limit=settings.memory_limit, read_only=read_only)
    try:
        yield warehouse
    finally:
        warehouse.close()


def _rejects_dir(rejects: Path | None) -> Path:
    if rejects is not None:
        return rejects
    from jingxin.config import load_settings

    return load_settings().var_dir() / "rejects"


@contextlib.contextmanager
def _progress() -> Iterator[object]:
    """A spinner naming the current stage, on a terminal; silent in pipes and tests."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        yield lambda _stage: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("starting", total=None)
        yield lambda stage: progress.update(task, description=stage)


def import_file(
    table: Annotated[str, typer.Argument(help="Warehouse table, e.g. subscribers.")],
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or Parquet file.")],
    replace: ReplaceOption = False,
    rejects: RejectsOption = None,
    warehouse: WarehouseOption = None,
    allow_foreign: ForeignOption = False,
    max_rejects: MaxRejectsOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Validate FILE against TABLE's schema; load the good rows, reject the bad with line and reason."""
    from jingxin.data.warehouse.importer import import_table

    share = _max_reject_share(max_rejects)
    with _open(warehouse) as wh, _progress() as say:
        report = import_table(wh, table=table, path=file, rejects_dir=_rejects_dir(rejects),
                              replace=replace, allow_foreign=allow_foreign, progress=say,
                              max_reject_share=share, encoding=encoding)
    _print_report(report)


def import_dir(
    directory: Annotated[Path, typer.Argument(help="Directory of <table>.parquet/.csv files.")],
    replace: ReplaceOption = False,
    rejects: RejectsOption = None,
    warehouse: WarehouseOption = None,
    allow_foreign: ForeignOption = False,
    max_rejects: MaxRejectsOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Import every <table>.parquet or <table>.csv in DIRECTORY in dependency order, all or nothing."""
    from jingxin.data.warehouse.directory import import_directory

    share = _max_reject_share(max_rejects)
    with _open(warehouse) as wh, _progress() as say:
        result = import_directory(wh, directory, rejects_dir=_rejects_dir(rejects),
                                  replace=replace, allow_foreign=allow_foreign, progress=say,
                                  max_reject_share=share, encoding=encoding)
    for report in result.reports:
        _print_report(report)
    for path in result.ignored:
        console.print(f"[yellow]ignored[/] {path.name}: names no warehouse table")


def _print_report(report: ImportReport) -> None:
    colour = "green" if not report.rows_rejected else "yellow"
    console.print(
        f"[{colour}]{report.table}[/]: {report.rows_loaded:,} rows loaded, "
        f"{report.rows_rejected:,} rejected of {report.rows_read:,} read from "
        f"{report.path} ({report.format}, {report.mode}, {report.seconds:.1f} s); "
        f"{report.rows_in_table:,} rows in the table"
    )
    for problem, count in report.problems.items():
        console.print(f"  {count:>9,}  {problem}")
    if report.rejects_path:
        console.print(f"  rejects: {report.rejects_path}")
    if report.extra_columns:
        console.print(f"  ignored columns: {', '.join(report.extra_columns)}")
    if report.recomputed_columns:
        console.print(f"  recomputed from the number range: "
                      f"{', '.join(report.recomputed_columns)}")
    if report.absent_columns:
        console.print(f"  absent columns loaded as null: {', '.join(report.absent_columns)}")


def tables_command(
    warehouse: WarehouseOption = None,
    schema: Annotated[bool, typer.Option(
        "--schema", help="Print every table's columns (from schema.py) as Markdown.")] = False,
) -> None:
    """List the warehouse tables with their row counts (or, with --schema, their columns)."""
    from jingxin.data.warehouse.schema import TABLES

    if schema:
        from jingxin.data.warehouse.catalog import schema_markdown

        print(schema_markdown(), end="")  # plain Markdown, unwrapped, for docs and pipes
        return
    from jingxin.data.warehouse.importer import duckdb_connection
    from jingxin.data.warehouse.tables import row_counts

    with _open(warehouse, read_only=True) as wh:
        counts = row_counts(duckdb_connection(wh))
    out = Table("table", "rows", "about", title="warehouse tables")
    for name, count in counts.items():
        out.add_row(name, "-" if count is None else f"{count:,}", TABLES[name].doc)
    console.print(out)


def summary_command(
    warehouse: WarehouseOption = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Date for tenure groups, YYYY-MM-DD (default: end of "
                                     "the latest usage month)."),
    ] = None,
) -> None:
    """Subscribers by plan, tenure, carrier and payment; last month's usage percentiles."""
    from jingxin.data.warehouse.summary import summarise
    from jingxin.errors import InputError

    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise InputError(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)") from None
    with _open(warehouse, read_only=True) as wh, _progress() as say:
        say("summarising")
        result = summarise(wh, as_of=day)
    console.print(f"{result.subscribers:,} subscribers; tenure as of {result.as_of}")
    for title, frame in (("by plan", result.by_plan), ("by tenure", result.by_tenure),
                         ("by carrier", result.by_carrier), ("by payment", result.by_payment)):
        console.print(_frame_table(title, frame, total=result.subscribers))
    month = result.usage_month.strftime("%Y-%m") if result.usage_month else "no usage"
    console.print(_frame_table(f"usage percentiles, {month}", result.usage))


def _frame_table(title: str, frame: object, *, total: int | None = None) -> Table:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    out = Table(*map(str, frame.columns), *(["share"] if total else []), title=title,
                title_justify="left")
    for record in frame.itertuples(index=False):
        cells = [_cell(v) for v in record]
        if total:
            cells.append(f"{100 * record.subscribers / total:.1f}%")
        out.add_row(*cells)
    return out


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        return f"{value:,.1f}"
    return str(value)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("import")(import_file)
    app.command("import-dir")(import_dir)
    app.command("tables")(tables_command)
    app.command("summary")(summary_command)

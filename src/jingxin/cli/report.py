"""``jingxin report``: reports written to a file, as one offline HTML page, a CSV or an
XLSX workbook (the suffix of ``--out`` chooses; docs/analytics.md, "Reports").

- ``jingxin report campaign ID [--out F] [--warehouse FILE]``: a campaign's funnel, arms
  against the hold-out, cost, revenue and ROI, events per hour, and the outcomes by
  segment, district, tenure and plan (from the warehouse, when there is one);
- ``jingxin report hall [--months 3] [--tenant T] [--by staff|branch] [--out F]``;
- ``jingxin report retention [--since 30d|DATE|all] [--out F]``;
- ``jingxin report planfit [--as-of DATE] [--top 20] [--build] [--warehouse FILE] [--out F]``.

Without ``--out`` a report goes to ``[analytics] reports_dir`` (``var/reports``) as
``<name>.html``. Each command prints the file written and a one-screen summary.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import read_warehouse, settings_and_store
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.analytics.report import Report

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

report_app = typer.Typer(help="Reports (报告) as offline HTML, CSV or XLSX: a campaign, the "
                              "hall, retention, plan fit.", no_args_is_help=True)  # fmt: skip

OutOption = Annotated[Path | None, typer.Option(
    "--out", help="The file: .html (one page, works offline), .csv (one long file) or .xlsx "
                  "(a sheet per table). Default: <reports_dir>/<report>.html.")]  # fmt: skip
WarehouseOption = Annotated[Path | None, typer.Option(
    "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")]  # fmt: skip
NOTES_SHOWN = 6  # the summary's notes; the file has them all


def _out(out: Path | None, settings: Any, name: str) -> Path:
    """The file to write, its format checked before any work is done."""
    from jingxin.analytics.render import check_format

    path = out if out is not None else settings.home / settings.analytics.reports_dir / \
        f"{name}.html"  # fmt: skip
    check_format(path)
    return path


def _write(report: Report, path: Path) -> None:
    from jingxin.analytics.report import write_report

    write_report(report, path)
    console.print(Text.assemble(("wrote ", "green"), str(path)))
    console.print(Text.assemble((report.title, "bold"), f"  {report.subtitle}"))
    if report.headline:
        table = Table("measure", "value", show_header=False, box=None, pad_edge=False)
        for label, value in report.headline:
            table.add_row(Text(label), Text(value))
        console.print(table)
    shown = [f"{name} ({table.num_rows})" for name, table in report.tables.items()]
    console.print(Text(f"tables: {', '.join(shown) or 'none'}; charts: {len(report.charts)}"))
    for note in report.notes[:NOTES_SHOWN]:
        console.print(Text.assemble(("note: ", "yellow"), note))
    if len(report.notes) > NOTES_SHOWN:
        console.print(Text(f"... {len(report.notes) - NOTES_SHOWN} more notes in the file"))


@contextmanager
def _warehouse_if_any(settings: Any, path: Path | None) -> Iterator[Any]:
    """The warehouse named by ``--warehouse`` (which must exist), else the settings' if
    there is one, else None (a campaign report then leaves the breakdowns out)."""
    if path is None and settings.warehouse.backend == "duckdb" \
            and not Path(settings.warehouse.path).is_file():  # fmt: skip
        yield None
        return
    with read_warehouse(settings, path) as wh:
        yield wh


@report_app.command("campaign")
def campaign_command(
    campaign_id: Annotated[int, typer.Argument(help="The campaign's id.", show_default=False)],
    out: OutOption = None,
    warehouse: WarehouseOption = None,
) -> None:
    """A campaign: funnel, arms vs hold-out, cost and ROI, timeline, breakdowns."""
    from jingxin.analytics.report import campaign_report

    settings, store = settings_and_store()
    try:
        path = _out(out, settings, f"campaign-{campaign_id}")
        with _warehouse_if_any(settings, warehouse) as wh:
            report = campaign_report(store, wh, campaign_id, settings=settings)
    finally:
        store.dispose()
    _write(report, path)


@report_app.command("hall")
def hall_command(
    months: Annotated[int, typer.Option("--months", help="Calendar months up to now.")] = 3,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Only this tenant's hall (default: every tenant).")] = None,
    by: Annotated[str, typer.Option("--by", help="Leaderboard by staff or branch.")] = "staff",
    out: OutOption = None,
) -> None:
    """The SMS business hall: use, zones, orders, referrals, NPS, leaderboard."""
    from jingxin.analytics.report_sources import hall_report
    from jingxin.hall.report import LEADERBOARD_BY

    if by not in LEADERBOARD_BY:
        raise InputError(f"--by: {by!r} is not one of {', '.join(LEADERBOARD_BY)}")
    settings, store = settings_and_store()
    try:
        path = _out(out, settings, "hall")
        report = hall_report(store, now=datetime.now(UTC), months=months, tenant_id=tenant,
                             leaderboard_by=by)  # fmt: skip
    finally:
        store.dispose()
    _write(report, path)


@report_app.command("retention")
def retention_command(
    since: Annotated[str, typer.Option(
        "--since", help="Orders extracted since: a span back from today (30d, 2w), a date, "
                        "or 'all'.")] = "30d",
    out: OutOption = None,
) -> None:
    """Double-stop work orders: what became of them, reactivation rate per branch."""
    from jingxin.analytics.report_sources import retention_report

    settings, store = settings_and_store()
    try:
        path = _out(out, settings, "retention")
        start = None if since == "all" else _since_day(since, settings)
        report = retention_report(store, since=start, now=datetime.now(UTC))
    finally:
        store.dispose()
    _write(report, path)


def _since_day(text: str, settings: Any) -> date:
    """The first extraction day counted, in the operator's zone (as ``retention rate``)."""
    from zoneinfo import ZoneInfo

    from jingxin.cli.probe import parse_since

    return parse_since(text).astimezone(ZoneInfo(settings.policy.default_timezone)).date()


@report_app.command("planfit")
def planfit_command(
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="The plan-fit build (YYYY-MM-DD; default: the latest).")] = None,
    top: Annotated[int, typer.Option("--top", help="Rows of the by-plan and move tables "
                                                   "(0: all).")] = 20,
    build: Annotated[bool, typer.Option(
        "--build", help="Build plan fit for the date first (as `jingxin audience planfit`; "
                        "default date: the month after the last month of usage).")] = False,
    warehouse: WarehouseOption = None,
    out: OutOption = None,
) -> None:
    """Plan fit: who is on the wrong plan, what they could save, the moves recommended."""
    from jingxin.analytics.report_sources import planfit_report
    from jingxin.config import load_settings

    settings = load_settings()
    path = _out(out, settings, "planfit")
    day = _date(as_of) if as_of is not None else None
    if build:
        from jingxin.audience.planfit import build_plan_fit
        from jingxin.audience.store import usage_as_of
        from jingxin.data.warehouse.connection import open_duckdb, open_warehouse

        wh = open_duckdb(warehouse) if warehouse is not None else open_warehouse(
            settings.warehouse)  # fmt: skip
        try:
            day = day or usage_as_of(wh)
            build_plan_fit(wh, as_of=day)
            report = planfit_report(wh, as_of=day, top=top, now=datetime.now(UTC))
        finally:
            wh.close()
    else:
        with read_warehouse(settings, warehouse) as wh:
            report = planfit_report(wh, as_of=day, top=top, now=datetime.now(UTC))
    _write(report, path)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)") from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(report_app, name="report")

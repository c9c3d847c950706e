"""``jingxin journeys``: the daily lifecycle scan, its runs, and the known triggers.

- ``jingxin journeys run [--date D] [--trigger NAME]... [--dry-run] [--json]
  [--warehouse FILE]``: scan a day (default: today in the operator's time zone) - a table
  of counts per trigger (candidates, queued, deferred, duplicates, rejected and skipped by
  reason), warnings and failures, and one rendered message per trigger. Exit code 1 when
  a trigger failed (the others still ran);
- ``jingxin journeys runs [--since 7d] [--json]``: the recorded runs, newest day first;
- ``jingxin journeys triggers``: every trigger the scan knows, in the order it runs them.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import read_warehouse, settings_and_store
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.journeys.scan import ScanReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

journeys_app = typer.Typer(help="Journeys: the daily lifecycle scan (birthday, anniversary, "
                                "renewal, holidays, usage, roaming...) and its runs.",
                           no_args_is_help=True)  # fmt: skip

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def today(settings: Any) -> date:
    """Today in the operator's time zone (``[policy] default_timezone``)."""
    return datetime.now(ZoneInfo(settings.policy.default_timezone)).date()


def _day(text: str, *, option: str = "--date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


@journeys_app.command("run")
def run_command(
    day: Annotated[str | None, typer.Option(
        "--date", help="The day to scan, YYYY-MM-DD (default: today, operator's time zone).")] = None,
    trigger: Annotated[list[str] | None, typer.Option(
        "--trigger", help="Only this trigger (repeat for more; default: journeys.triggers, "
                          "else all).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Compute and count only: deliver and record nothing.")] = False,
    as_json: JsonOption = False,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
) -> None:
    """Scan a day: every trigger's candidates through the delivery entry, once."""
    from jingxin.journeys.scan import run_scan

    settings, store = settings_and_store()
    try:
        scanned = _day(day) if day is not None else today(settings)
        with read_warehouse(settings, warehouse) as wh:
            report = run_scan(settings, store, wh, day=scanned, triggers=trigger or None,
                              dry_run=dry_run)  # fmt: skip
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print_report(report)
    if report.failed:
        raise typer.Exit(1)




def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "-"


def print_report(report: ScanReport) -> None:
    """The scan as a table, then its warnings and failures, then the sample messages."""
    title = f"journeys {report.day.isoformat()}" + (" (dry run: nothing delivered)"
                                                     if report.dry_run else "")  # fmt: skip
    table = Table(title=title)
    for name in ("trigger", "state", "candidates", "queued", "deferred", "duplicates",
                 "rejected", "skipped", "seconds"):  # fmt: skip
        table.add_column(name, justify="right" if name in ("candidates", "queued", "deferred",
                                                           "duplicates", "seconds") else "left")
    for t in report.triggers:
        state = "done (earlier)" if t.already_done else t.state
        table.add_row(t.trigger, state, str(t.candidates), str(t.queued), str(t.deferred),
                      str(t.duplicates), Text(_reasons(t.rejected)), Text(_reasons(t.skipped)),
                      "-" if t.already_done else f"{t.seconds:.2f}")  # fmt: skip
    console.print(table)
    for t in report.triggers:
        if t.error:
            console.print(Text.assemble((f"{t.trigger} failed: ", "bold red"), t.error))
        if t.warning:
            console.print(Text.assemble((f"{t.trigger} warning: ", "yellow"), t.warning))
    samples = [t for t in report.triggers if t.sample]
    if samples:
        console.print(Text("sample messages", style="bold"))
    for t in samples:
        console.print(Text.assemble((f"[{t.trigger}] ", "cyan"), t.sample), soft_wrap=True)


@journeys_app.command("runs")
def runs_command(
    since: Annotated[str, typer.Option(
        "--since", help="Days from this span back (7d, 2w) or ISO date-time on.")] = "7d",
    as_json: JsonOption = False,
) -> None:
    """The recorded runs of the daily scan, newest day first."""
    from jingxin.cli.probe import parse_since
    from jingxin.data.store.engine import store_errors
    from jingxin.journeys.status import recent_runs, run_row

    settings, store = settings_and_store()
    zone = ZoneInfo(settings.policy.default_timezone)
    first = parse_since(since).astimezone(zone).date()
    try:
        with store_errors("reading the journey runs"), store.sessions() as session:
            rows = [run_row(r) for r in recent_runs(session, since=first)]
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps({"since": first.isoformat(), "runs": rows}, ensure_ascii=False))
        return
    if not rows:
        console.print(f"no journey runs since {first.isoformat()} (run `jingxin journeys run`)")
        return
    table = Table(title=f"journey runs since {first.isoformat()}")
    for name in ("day", "trigger", "state", "candidates", "queued", "deferred", "duplicates",
                 "rejected", "skipped", "finished", "detail"):  # fmt: skip
        table.add_column(name)
    for r in rows:
        table.add_row(r["day"], r["trigger"], r["state"], *(str(r[k]) for k in (
            "candidates", "queued", "deferred", "duplicates", "rejected")),
            Text(_reasons(r["skipped"])), r["finished_at"] or "-", Text(r["detail"] or ""))  # fmt: skip
    console.print(table)


@journeys_app.command("triggers")
def triggers_command() -> None:
    """Every trigger of the daily scan, in the order it runs them, and which are on."""
    from jingxin.config import load_settings
    from jingxin.journeys.triggers import TRIGGERS

    chosen = load_settings().journeys.triggers
    table = Table(title="journey triggers" + ("" if chosen else " (journeys.triggers empty: "
                                                                "all on)"))  # fmt: skip
    for name in ("trigger", "on", "where"):
        table.add_column(name)
    for name, where in TRIGGERS.items():
        table.add_row(name, "yes" if not chosen or name in chosen else "no", where)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(journeys_app, name="journeys")

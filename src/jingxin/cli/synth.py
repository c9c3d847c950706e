"""``jingxin synth``: generate a synthetic operator's warehouse (every table of the
warehouse schema as Parquet, plus synth.json with the parameters and the ground truth).

Exit codes: 0 done, 2 bad input (bad parameter, unwritable or non-empty --out).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jingxin.errors import InputError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _as_of(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)") from None


def synth(
    subscribers: Annotated[int, typer.Option("--subscribers", "-n",
                                             help="Number of subscribers.")] = 100_000,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("var/synth"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    as_of: Annotated[str, typer.Option(
        "--as-of", help="First day of the month the labels look from; usage covers the six "
        "months before it.")] = "2026-10-01",
    location_days: Annotated[int, typer.Option(
        "--location-days", help="Days of location events before --as-of.")] = 7,
    location_subscribers: Annotated[int, typer.Option(
        "--location-subscribers", help="Location events for the first M subscribers "
        "(0 disables).")] = 1_000_000,
    cells: Annotated[int, typer.Option("--cells", help="Number of cells.")] = 20_000,
    stations: Annotated[Path | None, typer.Option(
        "--stations", help="CSV of real base-station positions (latitude, longitude) to "
        "place cells at.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite the tables of a non-empty --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate a synthetic operator as Parquet: subscribers, plans, usage, cells, events, labels."""
    from jingxin.data.synth import SynthParams, synthesize

    try:
        params = SynthParams(subscribers=subscribers, seed=seed, as_of=_as_of(as_of),
                             location_days=location_days,
                             location_subscribers=location_subscribers, cells=cells,
                             stations=stations)
        params.check()
        outcome = _run(params, out, force, quiet, synthesize)
    except InputError as exc:
        from jingxin.cli import error_line

        err_console.print(error_line(exc), highlight=False)
        raise typer.Exit(2) from None
    _report(outcome, out)


def _run(params, out: Path, force: bool, quiet: bool, synthesize):
    if quiet:
        return synthesize(params=params, out=out, force=force)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("synth subscribers", total=params.subscribers)
        return synthesize(params=params, out=out, force=force,
                          progress=lambda _stage, done, _total: bar.update(task,
                                                                           completed=done))


def _report(outcome, out: Path) -> None:
    table = Table(title=f"synthetic operator in {out} ({outcome.seconds:.1f} s)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in outcome.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    churn, offers = outcome.manifest["churn"], outcome.manifest["offers"]
    console.print(f"churn within 3 months: {churn['rate']:.2%}, oracle AUC {churn['oracle_auc']}"
                  f"; offer response {offers['response_rate']:.2%}, oracle AUC "
                  f"{offers['oracle_auc']}")


def register(app: typer.Typer) -> None:
    """Add ``jingxin synth`` to ``app``."""
    app.command("synth")(synth)

"""``jingxin flow validate|enrol|advance|status``: multi-step journeys (YAML) by hand.

- ``flow validate FILE``: every problem of a journey file, each with its line and field;
  the templates are checked against the store's approved catalogue unless ``--offline``;
  exit 1 on any problem;
- ``flow enrol FILE [--audience CSV | --trigger NAME] [--date D]``: enrol the numbers of
  an audience file (a ``msisdn`` column and one column per template variable) or of a
  trigger's candidates for day D (default: the journey's own entry), once per day;
- ``flow advance [--now T]``: run every due step of the journeys in ``[journeys]
  journeys_dir`` (``jingxin scheduler`` does this every run);
- ``flow status NAME``: enrolments by step, state and outcome, and the conversion of the
  treated and the hold-out group.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import console, open_cli_store, read_warehouse
from jingxin.errors import ImportFileError, InputError

flow_app = typer.Typer(help="Multi-step journeys: validate, enrol, advance, status.",
                       no_args_is_help=True)  # fmt: skip

NowOption = Annotated[str | None, typer.Option(
    "--now", help="Act as of this ISO instant (bare: the operator's zone; default: now).")]


@flow_app.command("validate")
def validate_command(
    path: Annotated[Path, typer.Argument(help="The journey file (YAML).")],
    offline: Annotated[bool, typer.Option(
        "--offline", help="Do not check the templates against the store's catalogue.")] = False,
) -> None:
    """Check a journey file; every problem on its own line, exit 1 when there is one."""
    from jingxin.journeys.flow import FlowError, load_flow

    store = None if offline else open_cli_store(None)
    try:
        flow = load_flow(path, store=store)
    except FlowError as exc:
        for problem in exc.problems:
            console.print(Text(problem))
        raise typer.Exit(1) from None
    finally:
        if store is not None:
            store.dispose()
    from jingxin.analytics.holdout import default_share
    from jingxin.config import load_settings

    entry = flow.entry.trigger or flow.entry.audience
    share = flow.holdout_share(default_share(load_settings()))
    console.print(Text(f"journey {flow.name}: ok ({len(flow.steps)} steps, entry {entry}, "
                       f"hold-out {share:.0%}{' by default' * (flow.holdout is None)})"))  # fmt: skip


@flow_app.command("enrol")
def enrol_command(
    path: Annotated[Path, typer.Argument(help="The journey file (YAML).")],
    audience: Annotated[Path | None, typer.Option(
        "--audience", help="A CSV or Parquet file: msisdn and the template variables.")] = None,
    trigger: Annotated[str | None, typer.Option(
        "--trigger", help="A trigger of the daily scan: its candidates of --date.")] = None,
    day: Annotated[str | None, typer.Option(
        "--date", help="The entry day, YYYY-MM-DD (default: today, operator's zone).")] = None,
    now: NowOption = None,
) -> None:
    """Enrol subscribers in a journey at its first step (once per number and day)."""
    from jingxin.analytics.holdout import default_share
    from jingxin.cli.arguments import instant
    from jingxin.config import load_settings
    from jingxin.journeys.engine import enrol, enrol_from_trigger
    from jingxin.journeys.flow import load_flow

    if audience is not None and trigger is not None:
        raise InputError("give one of --audience and --trigger, not both")
    settings = load_settings()
    at = instant(now, "--now")
    entry_day = _day(day, at, settings.policy.default_timezone)
    store = open_cli_store(None)
    try:
        flow = load_flow(path, store=store)
        source = audience or (flow.entry.audience if trigger is None else None)
        if source is not None:
            made = enrol(store, flow, read_audience(source), entry_key=entry_day.isoformat(),
                         now=at, default_holdout=default_share(settings))  # fmt: skip
        else:
            with read_warehouse(settings, None) as warehouse:
                made = enrol_from_trigger(store, flow, warehouse=warehouse, settings=settings,
                                          day=entry_day, now=at, trigger=trigger)  # fmt: skip
    finally:
        store.dispose()
    skipped = ", ".join(f"{why} {n}" for why, n in made.skipped.items()) or "none"
    console.print(Text(f"journey {flow.name}, {entry_day}: {made.candidates} candidates, "
                       f"{made.enrolled} enrolled ({made.holdout} held out), {made.already} "
                       f"already enrolled, skipped: {skipped}"))  # fmt: skip


@flow_app.command("advance")
def advance_command(
    now: NowOption = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="The journey files (default: [journeys] journeys_dir).")] = None,
) -> None:
    """Run every due step of every journey once (what the scheduler does each run)."""
    from jingxin.cli.arguments import instant
    from jingxin.config import load_settings
    from jingxin.errors import ConfigError
    from jingxin.journeys.engine import advance
    from jingxin.journeys.flow import load_flows

    settings = load_settings()
    folder = directory or settings.journeys.journeys_dir
    if not folder:
        raise ConfigError("journeys.journeys_dir: not set (or give --dir)")
    store = open_cli_store(None)
    try:
        flows = load_flows(folder, store=store)
        counts = advance(store, flows, now=instant(now, "--now"), settings=settings)
    finally:
        store.dispose()
    shown = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing was due"
    console.print(Text(f"{len(flows)} journeys: {shown}"))


@flow_app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    goal: Annotated[str | None, typer.Option(
        "--goal", help="replied, ordered or claimed (default: the journey file's goal).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Enrolments by step, state and outcome; treated versus hold-out conversion."""
    from jingxin.journeys.status import journey_status

    store = open_cli_store(None)
    try:
        status = journey_status(store, name, goal=goal or _goal_of(name))
    finally:
        store.dispose()
    groups = {"treated": status.treated, "holdout": status.holdout}
    if as_json:
        console.print_json(json.dumps({
            "journey": status.journey, "goal": status.goal,
            "positions": [dict(zip(("step", "state", "outcome", "n"), p, strict=True))
                          for p in status.positions],
            **{k: {"enrolled": g.enrolled, "converted": g.converted, "rate": g.rate}
               for k, g in groups.items()},
            "uplift": status.uplift}))  # fmt: skip
        return
    table = Table("step", "state", "outcome", "enrolments", title=f"journey {name}")
    for step, state, outcome, n in status.positions:
        table.add_row(step or "-", state, outcome or "-", str(n))
    console.print(table)
    for label, group in groups.items():
        rate = "-" if group.rate is None else f"{group.rate:.1%}"
        console.print(Text(f"{label}: {group.enrolled} enrolled, {group.converted} {status.goal} "
                           f"({rate})"))  # fmt: skip
    if status.uplift is not None:
        console.print(Text(f"uplift: {status.uplift * 100:+.1f} points"))


def _day(text: str | None, at: datetime, zone: str) -> date:
    from zoneinfo import ZoneInfo

    if text is None:
        return at.astimezone(ZoneInfo(zone)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--date: {text!r} is not a date YYYY-MM-DD") from None


def _goal_of(name: str) -> str:
    """The goal the journey's file names, when it is in the journeys directory."""
    from jingxin.config import load_settings
    from jingxin.journeys.flow import FlowError, load_flows

    folder = load_settings().journeys.journeys_dir
    try:
        flows = load_flows(folder) if folder else []
    except FlowError:
        flows = []
    return next((f.goal for f in flows if f.name == name), "ordered")


def read_audience(path: Path) -> pa.Table:
    """An audience file as a table of text columns (numbers keep their ``+`` and leading
    zeros; the templates' declared types read the variables)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            with path.open(encoding="utf-8-sig") as handle:
                header = next(iter(handle), "").strip()
            columns = [c.strip() for c in header.split(",")] if header else []
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in columns}, strings_can_be_null=True))  # fmt: skip
    except (OSError, UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise ImportFileError(f"{path}: cannot read the audience file: {exc}") from exc
    if "msisdn" not in table.column_names:
        raise ImportFileError(f"{path}: the audience file has no msisdn column "
                              f"(columns: {', '.join(table.column_names)})")  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(flow_app, name="flow")

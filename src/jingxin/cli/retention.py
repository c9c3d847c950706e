"""``jingxin retention``: double-stop (双停) work orders from the CLI.

- ``jingxin retention extract [--date D] [--warehouse FILE] [--json]``: the day's
  extraction (default: today in the operator's zone); re-running a day adds nothing;
- ``jingxin retention orders [--branch B] [--state open] [--limit 50] [--json]``: the
  worklist, highest churn propensity first, with the score's top reasons (numbers masked;
  the subscriber id finds the customer in the BOSS);
- ``jingxin retention show ID [--json]``: one order, its churn score's top reasons
  (feature, value, contribution) and its lifecycle;
- ``jingxin retention assign ID --to NAME``, ``retention visit ID [--note]``,
  ``retention close ID --reactivated|--lost [--note]``: the lifecycle, each step recorded
  with who (``--by``, default: the account running the command) and when;
- ``jingxin retention rate [--since 30d] [--json]``: the reactivation rate per branch.

Bad input is one line naming the option or the order (the app's entry point prints our
errors that way).
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import read_warehouse, settings_and_store
from jingxin.errors import InputError
from jingxin.logs import mask

if TYPE_CHECKING:
    from jingxin.audience.reasons import Reason
    from jingxin.data.store.models.journeys import WorkOrder
    from jingxin.retention import BranchRate, ExtractReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

retention_app = typer.Typer(help="Retention: double-stop (双停) work orders for the branches.",
                            no_args_is_help=True)  # fmt: skip

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
OrderArgument = Annotated[int, typer.Argument(help="The work order's id.", show_default=False)]
NoteOption = Annotated[str | None, typer.Option("--note", help="What happened, for the record.")]
ByOption = Annotated[str | None, typer.Option(
    "--by", help="Who does it (default: the account running the command).")]  # fmt: skip


def _by(by: str | None) -> str:
    return by if by is not None else getpass.getuser()


# ----------------------------------------------------------------------------- extract


@retention_app.command("extract")
def extract_command(
    day: Annotated[str | None, typer.Option(
        "--date", help="The day (YYYY-MM-DD; default: today in the operator's zone).")] = None,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Extract the day's double-stop subscribers into work orders (re-runnable)."""
    from jingxin.retention import extract

    settings, store = settings_and_store()
    try:
        when = _date(day, "--date") if day is not None else _today(settings)
        with read_warehouse(settings, warehouse) as wh:
            report = extract(settings, store, wh, day=when)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    _print_report(report)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


def _today(settings: Any) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(settings.policy.default_timezone)).date()




def _print_report(r: ExtractReport) -> None:
    console.print(f"double-stop extraction for {r.day} (barred {r.threshold_days}+ days): "
                  f"{r.candidates} candidates, {r.created} new orders, {r.existing} already "
                  f"had theirs")
    if r.by_branch:
        table = Table("branch", "new orders", title="new orders by branch")
        for branch, n in r.by_branch.items():
            table.add_row(Text(branch), str(n))
        console.print(table)
        basis = ", ".join(f"{k} {v}" for k, v in r.branched_by.items())
        console.print(f"branch chosen by: {basis}")
    build = f"feature build {r.feature_build}" if r.feature_build else "no feature build"
    console.print(f"churn propensity on {r.scored} of {r.created} new orders ({build})")
    if r.propensity_note:
        console.print(Text.assemble(("note: ", "yellow"), r.propensity_note))
    console.print(f"closed from the warehouse: {r.reactivated} reactivated, {r.lost} lost")
    for reason, n in r.skipped.items():
        console.print(Text(f"skipped: {n} ({reason})"))


# ----------------------------------------------------------------------------- orders


@retention_app.command("orders")
def orders_command(
    branch: Annotated[str | None, typer.Option("--branch", help="Only this branch's.")] = None,
    state: Annotated[str, typer.Option(
        "--state", help="open (default), all, or one state: created, assigned, visited, "
                        "reactivated, lost.")] = "open",
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The worklist: highest churn propensity first, then the longest barred."""
    from jingxin.retention import list_orders
    from jingxin.retention.workorders import order_reasons

    _, store = settings_and_store()
    try:
        orders = list_orders(store, branch=branch, state=None if state == "all" else state,
                             limit=limit)
        reasons = order_reasons(store, [o.id for o in orders])
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps([_order_json(o, reasons.get(o.id, [])) for o in orders],
                              ensure_ascii=False, indent=2))
        return
    if not orders:
        console.print("no work orders match")
        return
    table = Table("id", "branch", "subscriber", "number", "barred since", "propensity",
                  "state", "assignee", "top reasons", title=f"double-stop work orders: "
                  f"{len(orders)}")
    for o in orders:
        table.add_row(str(o.id), Text(o.branch), str(o.subscriber_id), mask(o.msisdn),
                      str(o.barred_since), "-" if o.propensity is None else f"{o.propensity:.3f}",
                      o.state, Text(o.assignee or "-"),
                      Text(_reasons_text(reasons.get(o.id)) or "-"))  # fmt: skip
    console.print(table)


def _reasons_text(reasons: list[Reason] | None) -> str:
    from jingxin.audience.reasons import format_reasons

    return format_reasons(reasons or [])


def _order_json(o: WorkOrder, reasons: list[Reason]) -> dict[str, Any]:
    return {"id": o.id, "branch": o.branch, "region": o.region,
            "subscriber_id": o.subscriber_id, "msisdn": mask(o.msisdn),
            "episode": o.episode, "barred_since": o.barred_since.isoformat(),
            "extracted_on": o.extracted_on.isoformat(), "propensity": o.propensity,
            "reasons": [r.to_json() for r in reasons],
            "state": o.state, "assignee": o.assignee}


@retention_app.command("show")
def show_command(order: OrderArgument, as_json: JsonOption = False) -> None:
    """One order: the subscriber, the churn score's top reasons, the lifecycle."""
    from jingxin.retention.workorders import get_order, order_events, order_reasons

    _, store = settings_and_store()
    try:
        found = get_order(store, order)
        reasons = order_reasons(store, [order]).get(order, [])
        events = order_events(store, order)
    finally:
        store.dispose()
    if as_json:
        body = _order_json(found, reasons)
        body["events"] = [{"state": e.state, "by": e.by, "at": e.at.isoformat(),
                           "note": e.note} for e in events]
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    score = "-" if found.propensity is None else f"{found.propensity:.3f}"
    console.print(Text(f"work order {found.id}: {found.state}, branch {found.branch}, "
                       f"subscriber {found.subscriber_id} ({mask(found.msisdn)}), barred "
                       f"since {found.barred_since}, assignee {found.assignee or '-'}"))
    console.print(f"churn propensity: {score}")
    if reasons:
        table = Table("feature", "value", "contribution", title="top reasons for the score")
        for r in reasons:
            table.add_row(Text(r.feature), Text(r.value), f"{r.contribution:+.3f}")
        console.print(table)
    elif found.propensity is not None:
        console.print("top reasons: none recorded (no single feature moves the score)")
    lifecycle = Table("at (UTC)", "state", "by", "note", title="lifecycle")
    for e in events:
        lifecycle.add_row(f"{e.at:%Y-%m-%d %H:%M}", e.state, Text(e.by or "-"),
                          Text(_note_text(e.note)))
    console.print(lifecycle)


def _note_text(note: str | None) -> str:
    """The note without the reasons line (shown in its own table above)."""
    from jingxin.retention.workorders import REASONS_LABEL

    lines = [ln for ln in (note or "").splitlines() if not ln.startswith(REASONS_LABEL)]
    return "\n".join(lines) or "-"


# ----------------------------------------------------------------------------- lifecycle


def _move(order: int, to: str, *, by: str | None, note: str | None,
          assignee: str | None = None) -> None:
    from jingxin.retention import transition

    _, store = settings_and_store()
    try:
        done = transition(store, order, to, by=_by(by), note=note, assignee=assignee,
                          now=datetime.now(UTC))
    finally:
        store.dispose()
    who = f" ({done.assignee})" if done.assignee else ""
    console.print(Text(f"work order {done.id}: {done.state}{who}"))


@retention_app.command("assign")
def assign_command(
    order: OrderArgument,
    to: Annotated[str, typer.Option("--to", help="Who visits (a name or staff code).")],
    note: NoteOption = None,
    by: ByOption = None,
) -> None:
    """Assign an order to someone (again, to hand it over)."""
    _move(order, "assigned", by=by, note=note, assignee=to)


@retention_app.command("visit")
def visit_command(order: OrderArgument, note: NoteOption = None, by: ByOption = None) -> None:
    """Record a visit (or a call) to the subscriber."""
    _move(order, "visited", by=by, note=note)


@retention_app.command("close")
def close_command(
    order: OrderArgument,
    reactivated: Annotated[bool, typer.Option(
        "--reactivated", help="The subscriber came back.")] = False,
    lost: Annotated[bool, typer.Option("--lost", help="The subscriber is gone.")] = False,
    note: NoteOption = None,
    by: ByOption = None,
) -> None:
    """Close an order: --reactivated or --lost."""
    if reactivated == lost:
        raise InputError("close: give one of --reactivated or --lost")
    _move(order, "reactivated" if reactivated else "lost", by=by, note=note)


# ----------------------------------------------------------------------------- rate


@retention_app.command("rate")
def rate_command(
    since: Annotated[str, typer.Option(
        "--since", help="Orders extracted since: a span back from today (30d, 2w), a date, "
                        "or 'all'.")] = "30d",
    as_json: JsonOption = False,
) -> None:
    """The reactivation rate per branch: reactivated / orders extracted since --since."""
    from jingxin.retention import reactivation_rate

    settings, store = settings_and_store()
    try:
        start = None if since == "all" else _since(since, settings)
        rows = reactivation_rate(store, since=start)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps({"since": start and start.isoformat(),
                               "rows": [asdict(r) for r in rows]}, ensure_ascii=False, indent=2))
        return
    _print_rates(rows, since=start)


def _since(text: str, settings: Any) -> date:
    """The first extraction day counted, in the operator's zone."""
    from zoneinfo import ZoneInfo

    from jingxin.cli.probe import parse_since

    return parse_since(text).astimezone(ZoneInfo(settings.policy.default_timezone)).date()


def _print_rates(rows: list[BranchRate], *, since: date | None) -> None:
    span = f"since {since}" if since else "all time"
    if not rows:
        console.print(f"no double-stop work orders extracted {span}")
        return
    table = Table("branch", "orders", "open", "visited", "reactivated", "lost", "rate",
                  title=f"reactivation rate by branch, orders extracted {span}")
    for r in rows:
        table.add_row(Text(r.branch), str(r.orders), str(r.open), str(r.visited),
                      str(r.reactivated), str(r.lost), f"{r.rate:.1%}")
    orders, back = sum(r.orders for r in rows), sum(r.reactivated for r in rows)
    table.add_row("all", str(orders), str(sum(r.open for r in rows)),
                  str(sum(r.visited for r in rows)), str(back),
                  str(sum(r.lost for r in rows)), f"{back / orders:.1%}")  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(retention_app, name="retention")

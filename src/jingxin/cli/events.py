"""``jingxin events``: the event log (sent, delivered, clicked, replied, ordered ...).

- ``jingxin events collect [--to-warehouse [--warehouse F]]``: append what happened since
  the last collect (idempotent: running it twice adds nothing); prints the new events per
  kind; with ``--to-warehouse`` the whole log is then copied to the warehouse table
  ``events`` for queries through Ibis;
- ``jingxin events list [--campaign ID | --experiment E] [--kind K] [--limit 50]``: the
  newest events, numbers masked.

The log and its attribution are described in docs/analytics.md and
:mod:`jingxin.analytics.events`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import settings_and_store
from jingxin.errors import InputError
from jingxin.logs import mask, mask_text

if TYPE_CHECKING:
    from jingxin.data.store.models import AnalyticsEvent

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
events_app = typer.Typer(help="The event log: what happened to each message and subscriber.",
                         no_args_is_help=True)  # fmt: skip
DETAIL_WIDTH = 28


@events_app.command("collect")
def collect_command(
    to_warehouse: Annotated[bool, typer.Option(
        "--to-warehouse", help="Then copy the whole log to the warehouse table `events` "
        "(Ibis; for your own queries and reports).")] = False,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="DuckDB warehouse file (default: warehouse.path).")] = None,
) -> None:
    """Append the events that happened since the last collect; prints the new ones per kind."""
    from jingxin.analytics.events import WAREHOUSE_TABLE, collect
    from jingxin.analytics.events import to_warehouse as copy_log
    from jingxin.data.store.models import EVENT_KINDS

    settings, store = settings_and_store()
    try:
        counts = collect(store, attribution_days=settings.analytics.attribution_days)
        copied = None
        if to_warehouse:
            with _writable_warehouse(settings, warehouse) as wh:
                copied = copy_log(store, wh)
    finally:
        store.dispose()
    table = Table("kind", "new events", title="events collected")
    for kind in EVENT_KINDS:
        table.add_row(kind, f"{counts.get(kind, 0):,}")
    table.add_row("total", f"{sum(counts.values()):,}")
    console.print(table)
    if copied is not None:
        console.print(f"warehouse table {WAREHOUSE_TABLE}: {copied:,} events (the whole log)")


@contextmanager
def _writable_warehouse(settings: Any, path: Path | None) -> Iterator[Any]:
    """The warehouse ``--warehouse`` names (a DuckDB file), else the settings', for writing."""
    from jingxin.data.warehouse.connection import open_duckdb, open_warehouse

    wh = open_duckdb(path) if path is not None else open_warehouse(settings.warehouse)
    try:
        yield wh
    finally:
        wh.close()


@events_app.command("list")
def list_command(
    campaign: Annotated[int | None, typer.Option(
        "--campaign", help="Only this campaign's events.")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="Only this experiment's (campaign:12, journey:NAME, fence:CODE).")]
    = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind of event.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")] = 50,
) -> None:
    """The newest events first, with their attribution (numbers masked)."""
    from sqlalchemy import select

    from jingxin.analytics.metrics import of_experiment, split_experiment
    from jingxin.data.store.engine import store_errors
    from jingxin.data.store.models import EVENT_KINDS, AnalyticsEvent

    if campaign is not None and experiment is not None:
        raise InputError("--campaign and --experiment both choose the events: give one")
    if kind is not None and kind not in EVENT_KINDS:
        raise InputError(f"--kind: {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    E = AnalyticsEvent
    query = select(E).order_by(E.at.desc(), E.id.desc()).limit(limit)
    if campaign is not None:
        query = query.where(E.campaign_id == campaign)
    if experiment is not None:
        source, source_id = split_experiment(experiment)
        query = query.where(of_experiment(E, source, source_id))
    if kind is not None:
        query = query.where(E.kind == kind)
    settings, store = settings_and_store()
    try:
        with store_errors("listing events"), store.sessions() as session:
            rows = session.scalars(query).all()
    finally:
        store.dispose()
    if not rows:
        console.print("no events match (run `jingxin events collect` to bring the log up to date)")
        return
    zone = settings.policy.default_timezone
    table = Table("id", f"at ({zone})", "kind", "number", "attributed to", "arm", "message",
                  "value", "detail", title=f"events: {len(rows)}")  # fmt: skip
    for e in rows:
        table.add_row(str(e.id), _local(e.at, zone), e.kind, mask(e.msisdn), _source(e),
                      e.arm or "-", "-" if e.message_id is None else str(e.message_id),
                      "-" if e.value is None else f"{e.value:,.2f}",
                      Text(_short(e.detail)))  # fmt: skip
    console.print(table)


def _source(event: AnalyticsEvent) -> Text:
    if event.source is None:
        return Text("unattributed")
    return Text(f"{event.source}:{event.source_id}" if event.source_id else event.source)


def _local(moment: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S}"


def _short(text: str | None) -> str:
    if not text:
        return "-"
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= DETAIL_WIDTH else text[: DETAIL_WIDTH - 1] + "…"


def register(root: typer.Typer) -> None:
    root.add_typer(events_app, name="events")

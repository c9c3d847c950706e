"""``jingxin events``: the event log (sent, delivered, clicked, replied, ordered ...).

- ``jingxin events collect``: append what happened since the last collect (idempotent:
  running it twice adds nothing); prints the new events per kind;
- ``jingxin events list [--campaign ID | --experiment E] [--kind K] [--limit 50]``: the
  newest events, numbers masked.

The log and its attribution are described in docs/analytics.md and
:mod:`jingxin.analytics.events`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

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
def collect_command() -> None:
    """Append the events that happened since the last collect; prints the new ones per kind."""
    from jingxin.analytics.events import collect
    from jingxin.data.store.models import EVENT_KINDS

    settings, store = settings_and_store()
    try:
        counts = collect(store, attribution_days=settings.analytics.attribution_days)
    finally:
        store.dispose()
    table = Table("kind", "new events", title="events collected")
    for kind in EVENT_KINDS:
        table.add_row(kind, f"{counts.get(kind, 0):,}")
    table.add_row("total", f"{sum(counts.values()):,}")
    console.print(table)


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

"""``jingxin fence report [--since 1d] [--json]``: what each fence's offers became (sent,
delivered, waiting, held out, refused by reason), entries per local hour, and one text
each, the number masked (:mod:`jingxin.geofence.report`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.logs import mask_text

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def report_command(
    since: Annotated[str, typer.Option(
        "--since", help="Offers made since: a span back from now (1d, 12h), an ISO time, or "
        "'all' (a replay with --event-time decides at the events' time).",
    )] = "1d",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Each fence's offers since --since: sent, delivered, waiting, refused by reason, per
    hour of entry, and a sample text."""
    from jingxin.cli.arguments import settings_and_store
    from jingxin.cli.probe import parse_since
    from jingxin.geofence.report import fence_report

    start = datetime(1970, 1, 1, tzinfo=UTC) if since == "all" else parse_since(since)
    settings, store = settings_and_store()
    try:
        lines = fence_report(store, since=start, zone=settings.policy.default_timezone)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps({"since": start.isoformat(), "fences": [x.as_dict() for x in lines]},
                              ensure_ascii=False))  # fmt: skip
        return
    if not lines:
        console.print(f"no {_title(since, start)}")
        return
    table = Table("fence", "queued", "sent", "delivered", "failed", "waiting", "held out",
                  "refused", "by hour of entry", title=_title(since, start))
    for x in lines:
        refused = ", ".join(f"{k} {n}" for k, n in x.refused.most_common()) or "-"
        hours = " ".join(f"{h:02d}h:{n}" for h, n in sorted(x.by_hour.items())) or "-"
        table.add_row(x.code, str(x.queued), str(x.sent), str(x.delivered), str(x.failed),
                      str(x.waiting), str(x.held_out), Text(refused), hours)  # fmt: skip
    console.print(table)
    for x in lines:
        if x.sample:
            console.print(Text(f"{x.code}: {mask_text(x.sample)}"))


def _title(since: str, start: datetime) -> str:
    return "fence offers" + ("" if since == "all" else f" since {start:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)

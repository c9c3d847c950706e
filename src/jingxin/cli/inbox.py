"""``jingxin inbox``: the MO received, what they answered and what the handlers did.

- ``jingxin inbox list [--msisdn N] [--service-number S] [--text WORD] [--since T]
  [--outcome O] [--limit N]``: newest first, numbers masked;
- ``jingxin inbox show ID``: one MO in full, with its attribution and reply;
- ``jingxin inbox process [--retry-failed] [--retry-unmatched]``: run the pending
  handlers by hand (the worker does it after each MO); again the failed MO, or the MO that
  had no handler and one matches now;
- ``jingxin inbox stats``: counts by outcome and handler, incomplete and undecodable.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jingxin.cli.arguments import settings_and_store
from jingxin.logs import mask, mask_text

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
inbox_app = typer.Typer(help="Two-way messaging: MO, their attribution and handlers.",
                        no_args_is_help=True)  # fmt: skip

# A list row shows this much text; `inbox show` the whole of it.
TEXT_WIDTH = 24


def _local(moment: datetime | None, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return "-" if moment is None else f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S}"


def _short(text: str) -> str:
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 1] + "…"


@inbox_app.command("list")
def list_command(
    msisdn: Annotated[str | None, typer.Option("--msisdn", help="Only from this number.")] = None,
    service_number: Annotated[str | None, typer.Option(
        "--service-number", help="Only to this service number (or its extensions).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Text containing this.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Received at or after this instant (bare: operator's zone).")] = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", help="handled, no_handler, failed or pending.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
) -> None:
    """MO received, newest first, with their attribution and outcome (numbers masked)."""
    from jingxin.cli.instants import parse_instant
    from jingxin.dispatch.inbox_view import MoFilter, list_mo

    where = MoFilter(msisdn=msisdn, service_number=service_number, text=text,
                     since=parse_instant(since, option="--since") if since else None,
                     outcome=outcome, limit=limit)  # fmt: skip
    settings, store = settings_and_store()
    try:
        rows = list_mo(store, where=where)
    finally:
        store.dispose()
    if not rows:
        console.print("no MO match")
        return
    zone = settings.policy.default_timezone
    table = Table("id", f"received ({zone})", "from", "to", "text", "flags", "attributed to",
                  "handler", "outcome", title=f"inbox: {len(rows)} MO")  # fmt: skip
    for r in rows:
        table.add_row(str(r.id), _local(r.received_at, zone), mask(r.msisdn), r.service_number,
                      _short(r.text), r.flags or "-", r.attributed_to, r.handler or "-",
                      r.outcome)  # fmt: skip
    console.print(table)


@inbox_app.command("show")
def show_command(mo_id: Annotated[int, typer.Argument(help="The MO's id.")]) -> None:
    """One MO in full: text, parts, attribution, handler, outcome and reply."""
    from jingxin.dispatch.inbox_view import get_mo

    settings, store = settings_and_store()
    try:
        r = get_mo(store, mo_id=mo_id)
    finally:
        store.dispose()
    zone = settings.policy.default_timezone
    text = mask_text(r.text) + (" (payload as hex)" if r.undecodable else "")
    fields = [
        ("from", mask(r.msisdn)), ("to", r.service_number), ("channel", r.channel),
        ("received", f"{_local(r.received_at, zone)} ({zone})"), ("text", text),
        ("parts", f"{r.parts} of {r.parts_expected}, coding {r.coding}"
                  + ("" if r.complete else " - INCOMPLETE")),
        ("attributed to", r.attributed_to), ("tenant", r.tenant_id or "-"),
        ("campaign", "-" if r.campaign_id is None else str(r.campaign_id)),
        ("handler", r.handler or "-"), ("outcome", r.outcome),
        ("detail", mask_text(r.detail) if r.detail else "-"),
        ("reply", "-" if r.reply_message_id is None else f"message {r.reply_message_id}"),
        ("handled", _local(r.handled_at, zone)),
    ]  # fmt: skip
    console.print(f"[bold]MO {r.id}[/]")
    for name, value in fields:
        console.print(f"  {name:<14}{value}", markup=False)


@inbox_app.command("process")
def process_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="MO per run.")] = 500,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Handle the failed MO again (once their cause is fixed).")] = False,
    retry_unmatched: Annotated[bool, typer.Option(
        "--retry-unmatched", help="Handle again the MO that had no handler and one matches "
                                  "now (a word added; a refusal an older version missed); "
                                  "their replies go out now.")] = False,
) -> None:
    """Run the handlers for every pending MO now; prints the tally as JSON."""
    from jingxin.dispatch.handler_runs import forget_failed, forget_unmatched
    from jingxin.dispatch.handlers import HandlerContext, default_registry, run_pending

    settings, store = settings_and_store()
    registry = default_registry(settings)
    context = HandlerContext.from_settings(settings, store=store)
    total: dict[str, int] = {"handled": 0, "no_handler": 0, "failed": 0, "raced": 0}
    try:
        if retry_failed:
            total["retried"] = forget_failed(store)
        if retry_unmatched:
            total["rematched"] = forget_unmatched(store, registry=registry)
        while True:
            tally = run_pending(store, registry=registry, context=context, limit=limit)
            for key in ("handled", "no_handler", "failed", "raced"):
                total[key] += getattr(tally, key)
            if tally.total < limit:
                break
    finally:
        store.dispose()
    console.print(json.dumps(total))


@inbox_app.command("stats")
def stats_command() -> None:
    """MO by outcome and by handler, with the incomplete, undecodable and attributed."""
    from jingxin.dispatch.inbox_view import inbox_stats

    _, store = settings_and_store()
    try:
        stats = inbox_stats(store)
    finally:
        store.dispose()
    if not stats.total:
        console.print("the inbox is empty")
        return
    table = Table("handler", "outcome", "count", title=f"inbox: {stats.total} MO")
    for (handler, outcome), count in sorted(stats.by_handler.items()):
        table.add_row(handler, outcome, str(count))
    console.print(table)
    by_outcome = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_outcome.items()))
    console.print(f"by outcome: {by_outcome}")
    console.print(f"incomplete {stats.incomplete}, undecodable {stats.undecodable}, "
                  f"attributed to a message {stats.attributed}")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(inbox_app, name="inbox")

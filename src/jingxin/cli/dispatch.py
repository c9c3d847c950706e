"""``jingxin worker``, ``jingxin outbox stats`` and ``jingxin campaign run|status|pause|resume|cancel``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jingxin.cli.arguments import settings_and_store

console = Console(highlight=False, soft_wrap=True)


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is due, wait for receipts, exit.")
    ] = False,
    lanes: Annotated[
        str | None,
        typer.Option(help="Comma-separated lanes: otp,notification,marketing."),
    ] = None,
    linger: Annotated[
        float, typer.Option(help="With --once: seconds to wait without progress.")
    ] = 10.0,
) -> None:
    """Run a dispatch worker: claim, route, submit; receipts back into states."""
    import asyncio
    import signal

    from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels
    from jingxin.dispatch.claim import lanes_of

    # Logging ([log]: text or JSON, numbers masked) is set up by the console script.
    settings, store = settings_and_store()
    wanted = lanes_of(lanes.split(",") if lanes else None)

    async def main():
        w = build_worker(settings, store, lanes=wanted)
        if settings.dispatch.metrics_port:
            w.metrics.serve(settings.dispatch.metrics_port)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await start_channels(w)
        try:
            return await w.run(stop=stop, once=once, linger=linger)
        finally:
            await close_channels(w)

    try:
        tally = asyncio.run(main())
    finally:
        store.dispose()
    console.print(json.dumps(tally.__dict__))


def outbox_stats() -> None:
    """Messages per lane and state, and the age of the oldest queued one."""
    from jingxin.data.store.models import utc_now
    from jingxin.dispatch.outbox import stats

    _, store = settings_and_store()
    try:
        rows = stats(store)
    finally:
        store.dispose()
    now = utc_now()
    console.print(f"{'lane':<13}{'state':<15}{'count':>10}  oldest")
    for row in rows:
        age = ""
        if row.oldest and row.state == "queued":
            seconds = (now - row.oldest).total_seconds()
            # Deferred messages (quiet hours, blackout days) are not late: say when they are due.
            age = f"{seconds:.0f}s" if seconds >= 0 else f"all deferred, next due in {-seconds / 60:.0f} min"
        console.print(f"{row.lane:<13}{row.state:<15}{row.count:>10}  {age}")
    if not rows:
        console.print("the outbox is empty")


def campaign_run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (YAML).")],
    at: Annotated[str | None, typer.Option(
        "--at", help="Decide as of this ISO instant (default: now), e.g. to replay a day.")] = None,
    again: Annotated[bool, typer.Option(
        "--again", help="Send a spec that already ran (same name, template, audience) again.")] = False,
) -> None:
    """Audience → render → policy → outbox; prints the summary as JSON."""
    from rich.progress import Progress

    from jingxin.dispatch.campaign import load_spec, run_campaign

    settings, store = settings_and_store()
    loaded = load_spec(spec)
    now = _instant(at)
    policy = settings.policy
    defaults = {"quiet_start": policy.quiet_start, "quiet_end": policy.quiet_end,
                "default_timezone": policy.default_timezone}  # fmt: skip
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"campaign {loaded.name}", total=None)
            summary = run_campaign(
                store, spec=loaded, now=now, unsubscribe_text=settings.content.unsubscribe_text,
                max_parts=settings.content.max_parts, policy_defaults=defaults,
                content=settings.content, progress=lambda n: bar.advance(task, n), again=again,
            )  # fmt: skip
    finally:
        store.dispose()
    console.print(json.dumps(summary.as_dict(), ensure_ascii=False))


def _instant(text: str | None):
    """An ISO instant (a bare one in the operator's zone), or None for the clock."""
    from jingxin.cli.instants import parse_instant

    return None if text is None else parse_instant(text)


def _control(action: str):
    def command(
        campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    ) -> None:
        from jingxin.dispatch.campaign import campaign_status, control

        _, store = settings_and_store()
        try:
            if action == "status":
                console.print(
                    json.dumps(campaign_status(store, campaign_id=campaign_id))
                )
            else:
                console.print(control(store, campaign_id=campaign_id, action=action))
        finally:
            store.dispose()

    command.__doc__ = {"status": "Messages of a campaign by state, parts and cost.",
                       "pause": "Stop claiming the campaign's messages.",
                       "resume": "Claim a paused campaign's messages again.",
                       "cancel": "Cancel: queued messages end as rejected/cancelled."}[action]  # fmt: skip
    return command


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("worker")(worker)
    outbox = typer.Typer(help="The durable outbox.", no_args_is_help=True)
    outbox.command("stats")(outbox_stats)
    app.add_typer(outbox, name="outbox")
    campaign = typer.Typer(help="Campaigns: run a spec, watch, pause, resume, cancel.",
                           no_args_is_help=True)  # fmt: skip
    campaign.command("run")(campaign_run)
    for action in ("status", "pause", "resume", "cancel"):
        campaign.command(action)(_control(action))
    app.add_typer(campaign, name="campaign")

"""``jingxin worker``, ``jingxin outbox stats`` and ``jingxin campaign
run|status|promote|pause|resume|cancel``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jingxin.cli.arguments import settings_and_store

console = Console(highlight=False, soft_wrap=True)
log = logging.getLogger("jingxin.dispatch.worker")


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is due, wait for receipts, exit.")
    ] = False,
    lanes: Annotated[
        str | None,
        typer.Option(help="Comma-separated lanes: otp,reply,notification,marketing "
                          "(reply: the way back's answers to MO)."),
    ] = None,
    linger: Annotated[
        float, typer.Option(help="With --once: seconds to wait without progress.")
    ] = 10.0,
) -> None:
    """Run a dispatch worker: claim, route, submit; receipts back into states."""
    import asyncio
    import signal

    from jingxin.dispatch.bootstrap import (build_worker, close_channels, freeze_heap,
                                            start_channels)  # fmt: skip
    from jingxin.data.store.engine import server_advice
    from jingxin.dispatch.claim import lanes_of

    # Logging ([log]: text or JSON, numbers masked) is set up by the console script.
    settings, store = settings_and_store()
    wanted = lanes_of(lanes.split(",") if lanes else None)
    for advice in server_advice(store):
        log.warning("%s", advice)

    async def main():
        w = build_worker(settings, store, lanes=wanted)
        if not once:
            freeze_heap()  # a long-running worker's process; --once may run inside another
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
    """Audience → hold-out and arms → render → policy → outbox; prints a line per arm,
    then the summary as JSON (held out, waiting for promote, per-arm counts)."""
    from rich.progress import Progress

    from jingxin.dispatch.campaign import load_spec, run_campaign

    settings, store = settings_and_store()
    loaded = load_spec(spec)
    now = _instant(at)
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"campaign {loaded.name}", total=None)
            summary = run_campaign(
                store, spec=loaded, now=now, unsubscribe_text=settings.content.unsubscribe_text,
                max_parts=settings.content.max_parts, policy_defaults=_policy_defaults(settings),
                content=settings.content, progress=lambda n: bar.advance(task, n), again=again,
                analytics=settings.analytics,
            )  # fmt: skip
    finally:
        store.dispose()
    for warning in summary.warnings:
        console.print(f"warning: {warning}")
    console.print(f"held out: {summary.held_out}"
                  + (f"; waiting for promote: {summary.waiting}" if summary.waiting else ""))
    for arm, counts in summary.arms.items():
        console.print(f"arm {arm}: {counts['assigned']} assigned, {counts['queued']} queued")
    console.print(json.dumps(summary.as_dict(), ensure_ascii=False))


def campaign_promote(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id (one run with a test share).")],
    metric: Annotated[str | None, typer.Option(
        "--metric", help="clicked, replied or ordered (default: the spec's winner_metric).")] = None,
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", help="Confidence the best arm must beat the runner-up at.")] = 0.95,
    force: Annotated[bool, typer.Option(
        "--force", help="Promote the best arm even if it is not significantly better.")] = False,
) -> None:
    """Send the best arm's template to the treated numbers the test share left out."""
    from jingxin.dispatch.campaign_promote import promote
    from jingxin.dispatch.deliver import DeliveryContext

    settings, store = settings_and_store()
    try:
        result = promote(store, campaign_id=campaign_id, context=DeliveryContext.from_settings(settings),
                         analytics=settings.analytics, metric=metric,
                         min_confidence=min_confidence, force=force)  # fmt: skip
    finally:
        store.dispose()
    for line in result.lines():
        console.print(line)
    out = {"campaign_id": campaign_id, "winner": result.winner, "metric": result.metric,
           "p_value": result.p_value, "forced": result.forced,
           "summary": result.summary.as_dict() if result.summary else None}  # fmt: skip
    console.print(json.dumps(out, ensure_ascii=False))


def _policy_defaults(settings) -> dict:
    policy = settings.policy
    return {"quiet_start": policy.quiet_start, "quiet_end": policy.quiet_end,
            "default_timezone": policy.default_timezone}


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

    command.__doc__ = {"status": "Messages of a campaign by state, parts and cost; the "
                                 "hold-out and, per arm, assigned and queued.",
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
    campaign = typer.Typer(help="Campaigns: run a spec, watch, promote a test's winner, "
                           "pause, resume, cancel.", no_args_is_help=True)  # fmt: skip
    campaign.command("run")(campaign_run)
    campaign.command("promote")(campaign_promote)
    for action in ("status", "pause", "resume", "cancel"):
        campaign.command(action)(_control(action))
    app.add_typer(campaign, name="campaign")

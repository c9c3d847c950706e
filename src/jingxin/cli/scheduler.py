"""``jingxin scheduler``: the dial tests every ``[probing] interval_seconds`` (and the hall's
reconcile hook after each run), and the journeys' work - the daily scans of the due days
(missed ones caught up), the journeys' daily enrolments and their due steps - and the
campaigns whose test phase is over (``experiment.promote_after_hours``) promoted, and the
enterprises' callbacks collected and pushed, one batch a run (``--no-callbacks`` leaves
them to ``jingxin callbacks run``), until stopped; ``--once`` / ``--iterations N`` for
bounded runs. One scheduler at a time: each run needs the ``scheduler`` lease in the
store; a second scheduler says who holds it and waits. Failures are alerted in the log
and the metrics, never by stopping: use ``jingxin probe run`` for an exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def scheduler(
    interval: Annotated[float | None, typer.Option(
        "--interval", min=0.01, help="Seconds between run starts (default: probing.interval_seconds).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit.")] = False,
    iterations: Annotated[int | None, typer.Option(
        "--iterations", min=1, help="Run this many times and exit.")] = None,
    probe: Annotated[list[str] | None, typer.Option(
        "--probe", help="Only this probe (repeat for more; default: all).")] = None,
    smsc_url: Annotated[str | None, typer.Option(
        "--smsc-url", help="The simulator's HTTP endpoint (default: probing.smsc_url).")] = None,
    metrics_port: Annotated[int, typer.Option(
        "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics here (0: off).")] = 0,
    journeys: Annotated[bool | None, typer.Option(
        "--journeys/--no-journeys",
        help="Run the journeys' scans and steps (default: [journeys] scheduled).")] = None,
    callbacks: Annotated[bool, typer.Option(
        "--callbacks/--no-callbacks",
        help="Collect and push enterprises' callbacks each run (one batch per run).")] = True,
) -> None:
    """Run the dial tests and the journeys periodically, never overlapping, until Ctrl-C."""
    import asyncio
    import os
    import signal
    import socket
    from datetime import timedelta

    from jingxin.callbacks import CallbackDuties
    from jingxin.cli.arguments import settings_and_store
    from jingxin.config import load_settings
    from jingxin.dispatch.campaign_promote import PromotionDuties
    from jingxin.journeys.flow import load_flows
    from jingxin.journeys.schedule import JourneyDuties
    from jingxin.probes import HallTick, ProbeMetrics, SimulatorChannel, load_probes, run_schedule
    from jingxin.probes.scheduler import LeasedTick

    settings = load_settings()
    probes = load_probes(settings.probes, names=probe or None)
    channel = SimulatorChannel(smsc_url or settings.probing.smsc_url)
    metrics = ProbeMetrics()
    if metrics_port:
        metrics.serve(metrics_port)
    every = interval if interval is not None else settings.probing.interval_seconds
    bound = 1 if once else iterations
    if not probes:
        console.print("no probes configured: only the hall's reconcile runs")
    _, store = settings_and_store()
    if journeys is None:
        journeys = settings.journeys.scheduled
    # The lease outlives two missed runs and a long daily scan; a crashed scheduler's
    # lease runs out in that time and another takes over.
    lease = LeasedTick(store=store, holder=f"{socket.gethostname()}:{os.getpid()}",
                       ttl=timedelta(seconds=max(2 * every + 60, 600)),
                       on_held=lambda held: console.print(
                           f"the scheduler lock is held by {held.holder} until "
                           f"{held.expires_at.isoformat(timespec='seconds')}; waiting", markup=False))  # fmt: skip
    duties = JourneyDuties(settings=settings, store=store, keep=lease.keep) if journeys else None
    if duties is not None and settings.journeys.journeys_dir:
        try:
            flows = load_flows(settings.journeys.journeys_dir, store=store)  # bad: stop now
        except Exception:
            store.dispose()
            raise
        console.print(f"journeys: {len(flows)} multi-step journeys in {settings.journeys.journeys_dir}")

    pushes = CallbackDuties(settings=settings, store=store, keep=lease.keep) if callbacks else None

    def show(report) -> None:  # noqa: ANN001 - a RunReport
        passed = sum(result.ok for result in report.results)
        failed = ", ".join(r.probe for r in report.failed)
        console.print(f"{report.run_id}: {passed}/{len(report.results)} passed"
                      + (f"; failed: {failed}" if failed else ""), markup=False)  # fmt: skip

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tick = HallTick(settings=settings, store=store, probes=probes, channel=channel,
                        metrics=metrics, on_report=show)  # fmt: skip
        promotions = PromotionDuties(settings=settings, store=store, keep=lease.keep)
        lease.parts = [tick, promotions] if duties is None else [tick, duties, promotions]
        if pushes is not None:
            lease.parts.append(pushes)
        return await run_schedule(lease, interval=every, iterations=bound, stop=stop)

    try:
        runs = asyncio.run(main())
    finally:
        try:
            lease.release()
        finally:
            if duties is not None:
                duties.close()
            if pushes is not None:
                pushes.close()
            store.dispose()
    console.print(f"scheduler stopped after {runs} runs")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("scheduler")(scheduler)

"""``jingxin scheduler``: the dial tests every ``[probing] interval_seconds`` (and the hall's
reconcile hook after each run) until stopped; ``--once`` / ``--iterations N`` for bounded
runs. Failures are alerted in the log and the metrics, never by stopping: use
``jingxin probe run`` for an exit code."""

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
) -> None:
    """Run the dial tests periodically, never overlapping, until Ctrl-C."""
    import asyncio
    import signal

    from jingxin.cli.arguments import settings_and_store
    from jingxin.config import load_settings
    from jingxin.probes import HallTick, ProbeMetrics, SimulatorChannel, load_probes, run_schedule

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
        return await run_schedule(tick, interval=every, iterations=bound, stop=stop)

    try:
        runs = asyncio.run(main())
    finally:
        store.dispose()
    console.print(f"scheduler stopped after {runs} runs")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("scheduler")(scheduler)

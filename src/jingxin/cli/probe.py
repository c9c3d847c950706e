"""``jingxin probe``: dial tests of the SMS business hall.

- ``jingxin probe run [--probe NAME]... [--json] [--metrics-file PATH]``: send each
  configured probe's MO through the simulator and check the reply; exit 1 when any failed;
- ``jingxin probe history [--probe NAME] [--since 7d] [--limit N] [--json]``: per probe
  runs, pass rate, p50/p95 latency, the last failure; then the recent runs;
- ``jingxin probe list``: the configured probes.

``jingxin scheduler`` (cli/scheduler.py) runs them every ``[probing] interval_seconds``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.errors import ConfigError, InputError
from jingxin.logs import mask, mask_text

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.probes import History, Probe, RunReport

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
probe_app = typer.Typer(help="Dial tests (拨测): MO commands whose replies are checked.",
                        no_args_is_help=True)  # fmt: skip

ProbeOption = Annotated[list[str] | None, typer.Option(
    "--probe", help="Only this probe (repeat for more; default: all).")]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TEXT_WIDTH = 30


def configured_probes(settings: Settings, names: list[str] | None) -> list[Probe]:
    """The probes to run; none configured is an error (a green run of nothing hides a gap)."""
    from jingxin.probes import load_probes

    probes = load_probes(settings.probes, names=names or None)
    if not probes:
        raise ConfigError("no probes configured: add [[probes]] entries (name, msisdn, "
                          "service_number, text, expect, max_latency_ms) to the settings")  # fmt: skip
    return probes


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` before now, or an ISO instant (bare: operator's zone)."""
    from jingxin.cli.instants import parse_instant

    from jingxin.probes.history import span_of

    span = span_of(text)
    if span is None:
        try:
            return parse_instant(text, option="--since")
        except InputError:
            raise InputError(f"--since: {text!r} is neither a span (7d, 12h, 30m) nor an "
                             "ISO date-time (2026-10-08T10:00:00+08:00)") from None  # fmt: skip
    return (now or datetime.now(UTC)) - span


def _short(text: str | None) -> Text:
    """A reply or MO text for a table cell: masked, one line, cut, never read as markup."""
    if text is None:
        return Text("-")
    text = mask_text(" ".join(text.split()))
    return Text(text if len(text) <= TEXT_WIDTH else text[: TEXT_WIDTH - 1] + "…")


def _reason(reason: str | None) -> Text:
    return Text("-" if reason is None else mask_text(reason))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _local(moment: datetime | None, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return "-" if moment is None else f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S}"


# ----------------------------------------------------------------------------- run


@probe_app.command("run")
def run_command(
    probe: ProbeOption = None,
    as_json: JsonOption = False,
    smsc_url: Annotated[str | None, typer.Option(
        "--smsc-url", help="The simulator's HTTP endpoint (default: probing.smsc_url).")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Probes waiting for replies at once.")] = 8,
    metrics_file: Annotated[str | None, typer.Option(
        "--metrics-file", help="Also write the Prometheus metrics to this file.")] = None,
) -> None:
    """Run the dial tests once; exit 1 when any failed, 0 when all passed."""
    import asyncio

    from jingxin.cli.arguments import settings_and_store
    from jingxin.config import load_settings
    from jingxin.probes import ProbeMetrics, SimulatorChannel, run_and_record

    settings = load_settings()
    probes = configured_probes(settings, probe)
    channel = SimulatorChannel(smsc_url or settings.probing.smsc_url)
    metrics = ProbeMetrics()
    _, store = settings_and_store()
    try:
        report = asyncio.run(run_and_record(probes, channel=channel, store=store,
                                            timeout=settings.probing.timeout_seconds,
                                            metrics=metrics, concurrency=concurrency))  # fmt: skip
    finally:
        store.dispose()
    if metrics_file:
        metrics.write(metrics_file)
    if as_json:
        typer.echo(json.dumps(report_json(report), ensure_ascii=False))
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def report_json(report: RunReport) -> dict:
    return {
        "run_id": report.run_id, "ok": report.ok, "unreachable": report.unreachable,
        "results": [{
            "probe": r.probe, "ok": r.ok, "reason": r.reason, "reply": r.reply_text,
            "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1),
            "max_latency_ms": r.max_latency_ms, "started_at": r.started_at.isoformat(),
        } for r in report.results],
    }  # fmt: skip


def print_report(report: RunReport) -> None:
    """A table of the results, or - when the simulator did not answer - that, said once."""
    passed = sum(result.ok for result in report.results)
    summary = f"{report.run_id}: {len(report.results)} probes, {passed} passed, " \
              f"{len(report.results) - passed} failed"
    if report.unreachable is not None:
        console.print(f"{report.unreachable}: every probe failed "
                      f"({', '.join(r.probe for r in report.results)})", style="bold red",
                      markup=False)  # fmt: skip
        console.print(summary, markup=False)
        return
    table = Table("probe", "result", "latency", "reply", "reason", title=f"probe run {report.run_id}")
    for r in report.results:
        verdict = Text("ok", style="green") if r.ok else Text("FAILED", style="bold red")
        table.add_row(Text(r.probe), verdict, _ms(r.latency_ms), _short(r.reply_text),
                      _reason(r.reason))  # fmt: skip
    console.print(table)
    console.print(summary, markup=False)


# ----------------------------------------------------------------------------- history


@probe_app.command("history")
def history_command(
    probe: Annotated[str | None, typer.Option("--probe", help="Only this probe.")] = None,
    since: Annotated[str, typer.Option(
        "--since", help="A span back from now (7d, 12h, 30m) or an ISO instant.")] = "7d",
    limit: Annotated[int, typer.Option("--limit", min=0, help="Recent runs listed.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The dial tests' history: per probe pass rate, p50/p95 latency, last failure."""
    from jingxin.cli.arguments import settings_and_store
    from jingxin.probes import probe_history

    start = parse_since(since)
    settings, store = settings_and_store()
    try:
        history = probe_history(store, probe=probe, since=start, limit=limit)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(history_json(history), ensure_ascii=False))
        return
    print_history(history, zone=settings.policy.default_timezone, since_text=since)


def history_json(history: History) -> dict:
    return {
        "since": None if history.since is None else history.since.isoformat(),
        "probes": [{
            "probe": s.probe, "runs": s.runs, "passed": s.passed,
            "pass_rate": round(s.pass_rate, 4), "p50_ms": s.p50_ms, "p95_ms": s.p95_ms,
            "last_run_at": s.last_run_at.isoformat(), "last_ok": s.last_ok,
            "last_failure_at": s.last_failure_at.isoformat() if s.last_failure_at else None,
            "last_failure_reason": s.last_failure_reason,
        } for s in history.stats],
        "recent": [{
            "run_id": r.run_id, "probe": r.probe, "started_at": r.started_at.isoformat(),
            "ok": r.ok, "latency_ms": r.latency_ms, "reply": r.reply_text, "reason": r.reason,
        } for r in history.recent],
    }  # fmt: skip


def print_history(history: History, *, zone: str, since_text: str) -> None:
    if not history.stats:
        console.print(f"no probe runs since {since_text}", markup=False)
        return
    table = Table("probe", "runs", "pass rate", "p50", "p95", "last run", "last failure",
                  "reason", title=f"dial tests since {since_text} ({zone})")  # fmt: skip
    for s in history.stats:
        last = _local(s.last_run_at, zone) + ("" if s.last_ok else " FAILED")
        table.add_row(Text(s.probe), str(s.runs), f"{s.pass_rate:.1%}", _ms(s.p50_ms),
                      _ms(s.p95_ms), last, _local(s.last_failure_at, zone),
                      _reason(s.last_failure_reason))  # fmt: skip
    console.print(table)
    if not history.recent:
        return
    recent = Table("started", "run", "probe", "result", "latency", "reply", "reason",
                   title=f"last {len(history.recent)} runs")  # fmt: skip
    for r in history.recent:
        recent.add_row(_local(r.started_at, zone), r.run_id, Text(r.probe),
                       "ok" if r.ok else "FAILED", _ms(r.latency_ms), _short(r.reply_text),
                       _reason(r.reason))  # fmt: skip
    console.print(recent)


# ----------------------------------------------------------------------------- list


@probe_app.command("list")
def list_command() -> None:
    """The configured probes and how they run (the probes and probing settings)."""
    from jingxin.config import load_settings
    from jingxin.probes import load_probes

    settings = load_settings()
    probes = load_probes(settings.probes)
    probing = settings.probing
    if not probes:
        console.print("no probes configured: add [[probes]] entries to the settings", markup=False)
        return
    table = Table("name", "from", "to", "text", "expect", "max latency",
                  title=Text(f"{len(probes)} probes via {probing.smsc_url}"))  # fmt: skip
    for p in probes:
        table.add_row(Text(p.name), mask(p.msisdn), p.service_number, _short(p.text),
                      Text(f"/{p.expect.pattern}/"), f"{p.max_latency_ms} ms")  # fmt: skip
    console.print(table)
    console.print(f"timeout {probing.timeout_seconds:g} s; `jingxin scheduler` runs them "
                  f"every {probing.interval_seconds:g} s", markup=False)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(probe_app, name="probe")

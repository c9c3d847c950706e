"""The geofence matcher's benchmarks: ``jingxin bench geofence-match`` and
``geofence-shanghai``.

- **geofence-match** (issue #15's goal: >= 300,000 events/s per process with 10,000
  fences and 10M subscribers' state): the synthetic world of
  :mod:`jingxin.bench.geofence_world` is built in memory (cells, fences, a directory, the
  event batches), then per run a fresh :class:`Matcher` warms up on the first batches and
  is timed on the rest, ``process`` and a ``sweep`` at the watermark per batch, as the
  runner calls them. Reported: events/s per run and their median, the state's bytes
  (``MatcherState.memory_bytes``) per million subscribers, the process's resident memory,
  triggers and counts; and in the same run the baseline of
  :mod:`jingxin.bench.geofence_naive` (a dict per subscriber, a loop per event) on a
  sample, the ratio, and whether both found the same on that sample.
- **geofence-shanghai**: the realism check of :mod:`jingxin.geofence.shanghai` on the real
  Shanghai Telecom files (``--data-dir``): entries per fence per hour with no dwell and
  with a 10-minute dwell, printed as a table.

Both end with their JSON line and append it to ``benchmarks/results/NAME.jsonl`` of the
source checkout (``--no-record``: don't; ``benchmarks/run.py`` is for ``--scale``-only
benchmarks and would not pass their options).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from jingxin.bench import emit

GOAL_EVENTS_PER_S = 300_000
RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
UTC_OFFSET = 8 * 3600
DATA_DIR = Path("../shared/data")  # beside the checkout, where the project keeps it


def rss_bytes() -> int:
    """Resident memory of this process now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def record(name: str, line: str, results: Path | None) -> Path | None:
    """Append the JSON line to ``results/NAME.jsonl`` (None: the checkout's folder, if
    this runs from one)."""
    folder = results or RESULTS
    if results is None and not folder.is_dir():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return path


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- geofence-match ---------------------------------------------------------------------


def geofence_match(plan: Any, *, runs: int, baseline_events: int) -> dict[str, Any]:
    """The figures of ``runs`` timed passes over the plan's events (module docstring)."""
    from jingxin.bench.geofence_world import build_world
    from jingxin.geofence.matcher import Matcher

    started = time.perf_counter()
    world = build_world(plan)
    setup_s = time.perf_counter() - started
    _say(f"world built in {setup_s:.1f} s: {len(world.batches)} batches")
    warm = max(1, min(10, len(world.batches) // 20))
    timed_events = sum(len(b) for b in world.batches[warm:])
    rates, last, grew = [], None, []
    for run in range(runs):
        before = rss_bytes()
        matcher = Matcher(world.compiled, world.directory, world.cells,
                          utc_offset_seconds=UTC_OFFSET)  # fmt: skip
        _pass(matcher, world.batches[:warm])
        t0 = time.perf_counter()
        counts, triggers = _pass(matcher, world.batches[warm:])
        seconds = time.perf_counter() - t0
        rates.append(timed_events / seconds)
        _say(f"run {run + 1}/{runs}: {rates[-1]:,.0f} events/s ({seconds:.2f} s)")
        last = (counts, triggers, matcher.state.memory_bytes(), rss_bytes())
        grew.append(last[3] - before)
        del matcher
    counts, triggers, state_bytes, rss = last
    median = statistics.median(rates)
    baseline = naive_baseline(world, baseline_events)
    per_million = 1_000_000 / max(plan.subscribers, 1)
    return {
        "subscribers": plan.subscribers, "fences": plan.fences, "cells": plan.cells,
        "events": sum(len(b) for b in world.batches), "timed_events": timed_events,
        "batch": plan.batch, "warmup_batches": warm, "runs": runs,
        "events_per_s": round(median), "runs_events_per_s": [round(r) for r in rates],
        "triggers": triggers, "counts": dict(sorted(counts.items())),
        "state_bytes": state_bytes, "state_bytes_per_million": round(state_bytes * per_million),
        "rss_mib": round(rss / 2**20), "matcher_rss_growth_mib": round(grew[0] / 2**20),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "setup_s": round(setup_s, 1), "world": world.stats, **baseline,
        "speedup_vs_baseline": round(median / baseline["baseline_events_per_s"], 1),
        "goal_events_per_s": GOAL_EVENTS_PER_S, "within_goal": median >= GOAL_EVENTS_PER_S,
    }  # fmt: skip


def _pass(matcher: Any, batches: list) -> tuple[Counter, int]:
    counts: Counter = Counter()
    triggers = 0
    for batch in batches:
        for result in (matcher.process(batch), matcher.sweep(matcher.watermark_ms)):
            counts.update(result.counts)
            triggers += len(result.triggers)
    return counts, triggers


def naive_baseline(world: Any, events: int) -> dict[str, Any]:
    """The dict-per-subscriber matcher on the first ``events`` events, and whether the
    real matcher counts the same on them."""
    from jingxin.bench.geofence_naive import NaiveMatcher, known_numbers
    from jingxin.geofence.matcher import Matcher

    sample, n = [], 0
    for batch in world.batches:
        if n >= events:
            break
        sample.append(batch)
        n += len(batch)
    naive = NaiveMatcher(world.compiled, world.cells, known_numbers(world.directory, sample),
                         utc_offset_seconds=UTC_OFFSET)  # fmt: skip
    t0 = time.perf_counter()
    for batch in sample:
        naive.process(batch)
        naive.sweep(naive.watermark)
    seconds = time.perf_counter() - t0
    matcher = Matcher(world.compiled, world.directory, world.cells, utc_offset_seconds=UTC_OFFSET)
    counts, _ = _pass(matcher, sample)
    differ = sorted(k for k in set(counts) | set(naive.counts) if counts[k] != naive.counts[k])
    _say(f"baseline: {n / seconds:,.0f} events/s on {n:,} events")
    return {"baseline": "dict per subscriber, loop per event", "baseline_events": n,
            "baseline_events_per_s": round(n / seconds),
            "baseline_triggers": naive.counts["triggered"],
            "baseline_agrees": not differ, **({"baseline_differs": differ} if differ else {})}


# -- geofence-shanghai ------------------------------------------------------------------


def geofence_shanghai(data_dir: Path) -> dict[str, Any]:
    """Parse the real files, replay them with dwell 0 and 10 min; figures and the
    per-hour table."""
    from jingxin.errors import InputError
    from jingxin.geofence import shanghai

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"--data-dir {data_dir}: no such directory (it should hold the real "
                         f"Shanghai Telecom files {shanghai.STATIONS} and {shanghai.SESSIONS}; "
                         "see ../shared/data/README.md)")  # fmt: skip
    t0 = time.perf_counter()
    cells = shanghai.cells_from_stations(data_dir / shanghai.STATIONS)
    loaded = shanghai.events_from_sessions(data_dir / shanghai.SESSIONS, cells)
    parse_s = time.perf_counter() - t0
    replays = [shanghai.replay(loaded.batch, cells, dwell_seconds=d) for d in (0, 600)]
    events = len(loaded.batch)
    fences = {}
    for i, fence in enumerate(replays[0].fences):
        fences[fence.code] = {"name": fence.name, "radius_m": fence.radius_m,
                              "stations": list(fence.cells),
                              **{f"dwell_{r.dwell_seconds // 60}m": {
                                  "entries": int(r.hourly[i].sum()),
                                  "subscribers": int(r.subscribers[i]),
                                  "by_hour": r.by_hour(i)} for r in replays}}  # fmt: skip
    return {
        "day": shanghai.DAY.isoformat(), "stations": len(cells), "users": loaded.users,
        "sessions": loaded.sessions, "crossing_midnight": loaded.crossing_midnight,
        "events": events, "problems": dict(loaded.counts), "samples": loaded.samples,
        "parse_s": round(parse_s, 3),
        "replay_events_per_s": {f"dwell_{r.dwell_seconds // 60}m": round(events / r.seconds)
                                for r in replays},
        "counts": {f"dwell_{r.dwell_seconds // 60}m": dict(sorted(r.counts.items()))
                   for r in replays},
        "fences": fences,
    }  # fmt: skip


def print_shanghai(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    fences = figures["fences"]
    summary = Table(title=f"Shanghai Telecom, {figures['day']}: {figures['events']:,} events "
                          f"of {figures['users']:,} users at {figures['stations']:,} stations")
    for column in ("fence", "radius", "stations", "entries (no dwell)", "users",
                   "entries (10 min)", "users"):  # fmt: skip
        summary.add_column(column, justify="left" if column in ("fence", "stations") else "right")
    for code, f in fences.items():
        d0, d10 = f["dwell_0m"], f["dwell_10m"]
        summary.add_row(f"{code} {f['name']}", f"{f['radius_m']:.0f} m", " ".join(f["stations"]),
                        str(d0["entries"]), str(d0["subscribers"]), str(d10["entries"]),
                        str(d10["subscribers"]))  # fmt: skip
    console.print(summary)
    hourly = Table(title="entries per local hour: no dwell / 10-minute dwell (24+: the next day)")
    hourly.add_column("hour", justify="right")
    for code in fences:
        hourly.add_column(code.removeprefix("sh-"), justify="right")
    hours = sorted({h for f in fences.values() for d in ("dwell_0m", "dwell_10m")
                    for h in f[d]["by_hour"]})  # fmt: skip
    for h in hours:
        hourly.add_row(h, *(f"{f['dwell_0m']['by_hour'].get(h, 0)} / "
                            f"{f['dwell_10m']['by_hour'].get(h, 0)}" for f in fences.values()))
    console.print(hourly)


# -- commands ---------------------------------------------------------------------------


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("geofence-match")
    def geofence_match_command(
        subscribers: int = typer.Option(10_000_000, "--subscribers", min=1,
                                        help="Subscribers in the directory and the state."),
        fences: int = typer.Option(10_000, "--fences", min=1, help="Fences."),
        events: int = typer.Option(5_000_000, "--events", min=1, help="Events in the stream."),
        batch: int = typer.Option(20_000, "--batch", min=1, help="Events per batch."),
        runs: int = typer.Option(3, "--runs", min=1, help="Timed passes (median reported)."),
        cells: int = typer.Option(100_000, "--cells", min=100, help="Cells in the cell table."),
        baseline_events: int = typer.Option(200_000, "--baseline-events", min=1,
                                            help="Events the naive baseline runs on."),
        seed: int = typer.Option(42, "--seed", help="Seed of the synthetic world."),
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """Matcher events/s with N subscribers' state and F fences, against a dict-per-
        subscriber baseline in the same run (default 10M subscribers, 10k fences, 5M events)."""
        from jingxin.bench.geofence_world import MatchPlan

        plan = MatchPlan(subscribers=subscribers, fences=fences, events=events, batch=batch,
                         cells=cells, seed=seed)  # fmt: skip
        figures = geofence_match(plan, runs=runs, baseline_events=baseline_events)
        _finish("geofence-match", figures, record_it=not no_record)

    @bench_app.command("geofence-shanghai")
    def geofence_shanghai_command(
        data_dir: Annotated[Path, typer.Option(
            "--data-dir", help="Folder of the real Shanghai Telecom files.")] = DATA_DIR,
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """The matcher on a real day of Shanghai Telecom sessions: entries per fence per hour
        around six real places, with no dwell and a 10-minute dwell."""
        figures = geofence_shanghai(data_dir)
        print_shanghai(figures)
        _finish("geofence-shanghai", figures, record_it=not no_record)


def _finish(name: str, figures: dict[str, Any], *, record_it: bool) -> None:
    line = emit({"benchmark": name, **figures})
    path = record(name, line, None) if record_it else None
    if path is not None:
        _say(f"recorded in {path}")
    print(line, flush=True)

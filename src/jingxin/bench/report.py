"""``jingxin bench report``: a campaign report over N recipients (issue #16: a report over a
1,000,000-recipient campaign in <= 10 s).

Set-up (not timed; :mod:`jingxin.bench.report_world`): a campaign of N recipients with two
variants and a 5 % hold-out run through ``run_campaign``, receipts, clicks, replies,
unsubscribes and orders at realistic rates, and a DuckDB warehouse with a ``subscribers``
row per recipient. The store is a temporary SQLite file, or ``--url`` an empty
PostgreSQL database.

Timed, ``--runs`` times (the event log emptied before each run):

- **cold**: ``campaign_report`` on a store whose events were never collected (its first
  stage, ``events.collect``, turns the outbox, clicks, replies, orders and hold-out into
  the event log) and ``write_report`` to HTML;
- **warm**: the same report asked for again: the log is up to date, ``collect`` finds
  nothing new. This is the report a user asks for, and the figure the goal is about.

Each with its stages: ``collect``, ``read`` (the campaign's assignments, events and
messages read once), ``states`` (messages by state), ``arm_table``,
``timeline``, ``subscriber_outcomes``, ``breakdown`` (the DuckDB join), ``charts``,
``render`` (the HTML file), ``other`` (statistics and the rest). The stages are timed by
wrapping the report's functions for the run (the code timed is the product's).

Baseline, the same run: the per-arm funnel as a plain pandas script would count it - the
campaign's assignments, messages and events read with ``pandas.read_sql`` and grouped
(distinct subscribers per arm and kind, order value, parts). It computes one table of the
report (the ``arms`` table, which it checks equal), so ``baseline_ratio`` is its time over
ours for the same table: the warm ``read`` (shared by every table) plus ``arm_table``. The
whole warm report is given beside it.

The JSON line is appended to ``benchmarks/results/report.jsonl`` (``--no-record``: don't).
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

GOAL = "a report over a 1,000,000-recipient campaign in <= 10 s"
GOAL_SECONDS = 10.0
# (module, attribute, stage): the report's functions timed as its stages.
STAGES = (
    ("jingxin.analytics.events", "collect", "collect"),
    ("jingxin.analytics.metrics", "experiment_rows", "read"),
    ("jingxin.analytics.report", "_message_states", "states"),
    ("jingxin.analytics.metrics", "arm_table", "arm_table"),
    ("jingxin.analytics.report", "_timeline", "timeline"),
    ("jingxin.analytics.metrics", "subscriber_outcomes", "subscriber_outcomes"),
    ("jingxin.analytics.report_breakdown", "breakdowns", "breakdown"),
    ("jingxin.analytics.report", "_campaign_charts", "charts"),
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_report(*, recipients: int, runs: int, url: str | None = None,
               keep: Path | None = None, seed: int = 7,
               baseline: bool = True) -> dict[str, Any]:  # fmt: skip
    """Build the world, time ``runs`` cold and warm reports (module docstring); the
    figures. ``keep``: leave the store, warehouse and report in that folder."""
    from jingxin.bench import report_world
    from jingxin.data.store import open_store

    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="jx-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        store = open_store(url or f"sqlite:///{folder / 'report.db'}", upgrade=True)
        try:
            _refuse_a_used_store(store)
            started = time.perf_counter()
            world = report_world.build(store, folder, recipients=recipients, seed=seed)
            setup_s = time.perf_counter() - started
            _say(f"set-up {setup_s:.1f} s: {world['setup_s']}; rows {world['rows']}")
            figures = _runs(store, folder, world["campaign_id"], runs=runs)
            if baseline:
                figures["baseline"] = _baseline(store, world["campaign_id"], figures["arms"])
            dialect = store.engine.dialect.name
        finally:
            store.dispose()
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return _figures(dialect, recipients, runs, setup_s, world, figures)


def _refuse_a_used_store(store: Any) -> None:
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as session:
        if session.scalar(select(func.count()).select_from(Message)):
            raise SystemExit("bench report needs an empty store (--url names a used one)")


def _runs(store: Any, folder: Path, campaign_id: int, *, runs: int) -> dict[str, Any]:
    """``runs`` times: empty the event log, a cold report, a warm one."""
    from jingxin.analytics.report import campaign_report, write_report
    from jingxin.bench.report_world import REPORT_AT
    from jingxin.config import Settings
    from jingxin.data.warehouse.connection import open_duckdb

    settings = Settings()
    out: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    report = None
    for run in range(runs):
        _forget_events(store)
        for kind in ("cold", "warm"):
            wh = open_duckdb(folder / "warehouse.duckdb", read_only=True)
            try:
                with _stages() as stages:
                    started = time.perf_counter()
                    report = campaign_report(store, wh, campaign_id, settings=settings,
                                             now=REPORT_AT)  # fmt: skip
                    built = time.perf_counter()
                    write_report(report, folder / "report.html")
                    done = time.perf_counter()
            finally:
                wh.con.disconnect()
            stages["render"] = done - built
            stages["other"] = max(0.0, built - started - sum(
                v for k, v in stages.items() if k != "render"))
            stages["total"] = done - started
            out[kind].append(stages)
            _say(f"run {run + 1} {kind}: {stages['total']:.2f} s "
                 + " ".join(f"{k} {v:.2f}" for k, v in stages.items() if k != "total"))
    assert report is not None
    return {"times": out, "arms": report.tables["arms"],
            "html_bytes": (folder / "report.html").stat().st_size,
            "tables": {name: t.num_rows for name, t in report.tables.items()},
            "charts": len(report.charts), "notes": len(report.notes)}  # fmt: skip


def _forget_events(store: Any) -> None:
    """Empty the event log and its marks: the next collect reads everything again."""
    from sqlalchemy import delete

    from jingxin.data.store.models import AnalyticsEvent, EventMark

    with store.transaction() as session:
        session.execute(delete(AnalyticsEvent))
        session.execute(delete(EventMark))


@contextlib.contextmanager
def _stages() -> Iterator[dict[str, float]]:
    """Wrap the functions of :data:`STAGES` for the block; their seconds by stage."""
    import importlib

    seconds: dict[str, float] = {stage: 0.0 for _, _, stage in STAGES}
    saved: list[tuple[Any, str, Callable[..., Any]]] = []

    def timing(fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - started
        return timed

    for module_name, attribute, stage in STAGES:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        saved.append((module, attribute, original))
        setattr(module, attribute, timing(original, stage))
    try:
        yield seconds
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)


# ----------------------------------------------------------------------------- baseline


def _baseline(store: Any, campaign_id: int, arms: Any) -> dict[str, Any]:
    """The per-arm funnel in plain pandas (module docstring): its seconds, and whether it
    agrees with the report's ``arms`` table."""
    started = time.perf_counter()
    table = pandas_arms(store, campaign_id)
    seconds = time.perf_counter() - started
    ours = {r["arm"]: r for r in arms.to_pylist()}
    columns = ("assigned", "sent", "delivered", "clicked", "replied", "ordered", "opted_out")
    agrees = set(ours) == set(table.index) and all(
        int(table.loc[arm, c]) == ours[arm][c] for arm in ours for c in columns) and all(
        abs(float(table.loc[arm, "value"]) - ours[arm]["value"]) < 1e-6 for arm in ours)
    return {"what": "pandas.read_sql of the campaign's assignments, messages and events, "
                    "grouped per arm (the arms table only)",
            "seconds": round(seconds, 2), "agrees": agrees}  # fmt: skip


def pandas_arms(store: Any, campaign_id: int) -> Any:
    """Distinct subscribers per arm and kind, order value and parts, as pandas counts them."""
    import pandas as pd

    source_id = str(campaign_id)
    with store.engine.connect() as connection:
        assigned = pd.read_sql(
            "SELECT arm, holdout, msisdn FROM experiment_assignments WHERE experiment = "
            f"'campaign:{source_id}'", connection)  # fmt: skip
        messages = pd.read_sql(
            "SELECT arm, msisdn, parts, submitted_at FROM messages WHERE campaign_id = "
            f"{int(campaign_id)}", connection)  # fmt: skip
        events = pd.read_sql(
            "SELECT arm, kind, msisdn, value FROM analytics_events WHERE source = 'campaign' "
            f"AND source_id = '{source_id}'", connection)  # fmt: skip
    table = assigned.groupby("arm").agg(assigned=("msisdn", "nunique"))
    sent = messages[messages["submitted_at"].notna()]
    table["parts"] = sent.groupby("arm")["parts"].sum()
    counts = events.groupby(["arm", "kind"])["msisdn"].nunique().unstack(fill_value=0)
    table = table.join(counts, how="outer")
    table["value"] = events[events["kind"] == "ordered"].groupby("arm")["value"].sum()
    return table.fillna(0)


# ----------------------------------------------------------------------------- figures


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def _figures(dialect: str, recipients: int, runs: int, setup_s: float,
             world: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    times = figures["times"]
    median = {kind: {stage: _median([run[stage] for run in times[kind]])
                     for stage in times[kind][0]} for kind in times}  # fmt: skip
    baseline = figures.get("baseline")
    warm = median["warm"]["total"]
    ours = median["warm"]["read"] + median["warm"]["arm_table"]
    return {
        "dialect": dialect, "recipients": recipients, "runs": runs,
        "setup_s": round(setup_s, 1), "setup_steps_s": world["setup_s"],
        "rows": world["rows"],
        "cold_s": median["cold"]["total"], "warm_s": warm,
        "cold_runs_s": [round(r["total"], 2) for r in times["cold"]],
        "warm_runs_s": [round(r["total"], 2) for r in times["warm"]],
        "cold_stages_s": {k: v for k, v in median["cold"].items() if k != "total"},
        "warm_stages_s": {k: v for k, v in median["warm"].items() if k != "total"},
        "html_bytes": figures["html_bytes"], "tables": figures["tables"],
        "charts": figures["charts"],
        "baseline": baseline,
        # the baseline makes the arms table; ours: the shared read and the arms counted
        "baseline_ratio": (round(baseline["seconds"] / ours, 1) if baseline and ours else None),
        "goal": GOAL, "goal_met": warm <= GOAL_SECONDS,
    }  # fmt: skip


# ----------------------------------------------------------------------------- command


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("report")
    def report_command(
        recipients: int = typer.Option(1_000_000, "--recipients", min=100,
                                       help="Recipients of the campaign reported on."),
        runs: int = typer.Option(3, "--runs", min=1, help="Cold and warm reports timed."),
        url: str | None = typer.Option(None, "--url", help="An empty PostgreSQL database "
                                       "(default: SQLite in a temporary folder)."),
        keep: Path | None = typer.Option(None, "--keep", help="Keep the store, warehouse "
                                         "and report.html in this folder."),
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """A campaign report (funnel, arms, hold-out, breakdowns, HTML) over N recipients.

        Figures: cold (events collected first) and warm report seconds with their stages,
        and a pandas count of the arms beside it (goal: <= 10 s at 1,000,000)."""
        from jingxin.bench import emit
        from jingxin.bench.geofence import record

        figures = run_report(recipients=recipients, runs=runs, url=url, keep=keep)
        line = emit({"benchmark": "report", **figures})
        path = None if no_record else record("report", line, None)
        if path is not None:
            _say(f"recorded in {path}")
        if keep is not None:
            _say(f"kept in {keep}")
        print(line, flush=True)

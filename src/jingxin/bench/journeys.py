"""``jingxin bench journeys-scan``: the full daily scan of N synthetic subscribers.

The synthetic operator (:mod:`jingxin.data.synth`, as of 2026-12-01: usage June-November,
location events on the last two days of November for a tenth of the subscribers, at most
a million) is loaded into a file-backed DuckDB by DuckDB itself (``read_parquet``), in a
process of its own so that its memory is not the scan's. The warehouse is kept, keyed by
scale, under ``--cache-dir`` (default: the temporary folder) and reused by the next run at
that scale: building 10M subscribers takes minutes, scanning them is what is measured.

The scan is :func:`jingxin.journeys.scan.run_scan` with every trigger for 2026-11-30 (a
Monday, no holiday, inside the location window) at 08:30 local time, delivering into an
empty store: a SQLite file in a temporary folder, or ``--store-url`` (an empty PostgreSQL
database). Reported: seconds per trigger (and of them, in the delivery entry), the total,
candidates and messages queued, the peak resident memory of the scanning process
(``ru_maxrss``), and the goal (60 s at 10M on the reference machine).
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer

from jingxin.bench import emit

SYNTH_AS_OF = date(2026, 12, 1)
SCAN_DAY = date(2026, 11, 30)
SCAN_AT = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
LOCATION_DAYS = 2
GOAL_SECONDS = 60.0
DEFAULT_SCALE = 10_000_000
SEED = 42


def synth_params(scale: int) -> Any:
    from jingxin.data.synth import SynthParams

    return SynthParams(subscribers=scale, seed=SEED, as_of=SYNTH_AS_OF,
                       location_days=LOCATION_DAYS,
                       location_subscribers=min(scale // 10, 1_000_000),
                       cells=max(500, min(20_000, scale // 50)))  # fmt: skip


def _manifest(scale: int) -> dict[str, Any]:
    params = synth_params(scale)
    return {"scale": scale, "seed": params.seed, "as_of": params.as_of.isoformat(),
            "location_days": params.location_days,
            "location_subscribers": params.location_subscribers, "cells": params.cells}  # fmt: skip


def build_warehouse(scale: int, folder: Path) -> float:
    """Synthesize ``scale`` subscribers and load them into ``folder/wh.duckdb``; seconds.
    The manifest is written last: a build cut off is rebuilt, never half reused."""
    import shutil

    from jingxin.data.synth import synthesize
    from jingxin.data.warehouse.connection import open_duckdb

    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    synthesize(params=synth_params(scale), out=folder / "synth")
    wh = open_duckdb(folder / "wh.duckdb")
    try:
        for path in sorted((folder / "synth").glob("*.parquet")):
            wh.con.raw_sql(f"CREATE TABLE {path.stem} AS SELECT * FROM read_parquet('{path}')")
    finally:
        wh.close()
    shutil.rmtree(folder / "synth", ignore_errors=True)
    (folder / "manifest.json").write_text(json.dumps(_manifest(scale)))
    return time.perf_counter() - started


def cached_warehouse(scale: int, cache_dir: Path, *, rebuild: bool) -> tuple[Path, float | None]:
    """The warehouse file for ``scale`` (built in a process of its own unless a complete
    one is cached) and the seconds its build took (None: reused)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    folder = cache_dir / f"journeys-{scale}"
    manifest = folder / "manifest.json"
    if not rebuild and manifest.is_file() and json.loads(manifest.read_text()) == _manifest(scale):
        return folder / "wh.duckdb", None
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        seconds = pool.submit(build_warehouse, scale, folder).result()
    return folder / "wh.duckdb", seconds


def _store(store_url: str | None, tmp: Path):
    """An empty store with the starter library approved for the operator's tenant."""
    from sqlalchemy import func, select

    from jingxin.content import catalog
    from jingxin.content.library import starter_library
    from jingxin.data.store import open_store
    from jingxin.data.store.models import JourneyRun, Message
    from jingxin.data.store.tenants import ensure_default_tenant
    from jingxin.errors import InputError

    store = open_store(store_url or f"sqlite:///{tmp / 'bench.db'}", upgrade=True)
    with store.sessions() as s:
        used = (s.scalar(select(func.count()).select_from(Message))
                or s.scalar(select(func.count()).select_from(JourneyRun)))  # fmt: skip
    if used:
        store.dispose()
        raise InputError("--store-url: the store already holds messages or journey runs; "
                         "the benchmark needs an empty database")  # fmt: skip
    with store.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=starter_library(), approve_as="bench",
                             reviewer=None)  # fmt: skip
    return store


def journeys_scan(*, scale: int, store_url: str | None, cache_dir: Path,
                  rebuild: bool = False) -> dict[str, Any]:  # fmt: skip
    """The figures of one full scan of ``scale`` subscribers."""
    from jingxin.config import load_settings
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.journeys.scan import run_scan
    from jingxin.journeys.triggers import TRIGGERS

    path, build_s = cached_warehouse(scale, cache_dir, rebuild=rebuild)
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="jingxin-journeys-scan-") as tmp:
        store = _store(store_url, Path(tmp))
        wh = open_duckdb(path, read_only=True)
        try:
            started = time.perf_counter()
            report = run_scan(settings, store, wh, day=SCAN_DAY, triggers=list(TRIGGERS),
                              now=SCAN_AT)  # fmt: skip
            total = time.perf_counter() - started
        finally:
            wh.close()
            store.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    triggers = {t.trigger: {"state": t.state, "seconds": round(t.seconds, 3),
                            "delivery_s": round(t.delivery_seconds, 3),
                            "candidates": t.candidates, "queued": t.queued,
                            "deferred": t.deferred, "rejected": sum(t.rejected.values()),
                            **({"error": t.error} if t.error else {})}
                for t in report.triggers}  # fmt: skip
    return {"subscribers": scale, "day": SCAN_DAY.isoformat(),
            "store": "postgresql" if store_url else "sqlite",
            "warehouse_build_s": None if build_s is None else round(build_s, 1),
            "warehouse": str(path), "triggers": triggers, "total_s": round(total, 3),
            "candidates": report.total("candidates"), "queued": report.total("queued"),
            "deferred": report.total("deferred"), "failed": report.failed,
            "peak_rss_mib": round(peak_mib), "goal_s": GOAL_SECONDS,
            "within_goal": total <= GOAL_SECONDS}  # fmt: skip


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("journeys-scan")
    def journeys_scan_command(
        scale: int = typer.Option(DEFAULT_SCALE, "--scale", min=1000,
                                  help="Synthetic subscribers."),
        store_url: str = typer.Option(None, "--store-url",
                                      help="An empty store (default: SQLite in a temp dir)."),
        cache_dir: Path = typer.Option(None, "--cache-dir",
                                       help="Keep built warehouses here, by scale "
                                            "(default: the temporary folder)."),
        rebuild: bool = typer.Option(False, "--rebuild", help="Build the warehouse afresh."),
    ) -> None:
        """A full daily journeys scan (all triggers, delivered into an empty store) of
        --scale synthetic subscribers: seconds per trigger, total, peak memory (default
        --scale 10,000,000)."""
        folder = cache_dir or Path(tempfile.gettempdir()) / "jingxin-bench"
        figures = journeys_scan(scale=scale, store_url=store_url, cache_dir=folder,
                                rebuild=rebuild)  # fmt: skip
        print(emit({"benchmark": "journeys-scan", "scale": scale, **figures}), flush=True)

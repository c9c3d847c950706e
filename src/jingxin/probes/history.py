"""The dial tests' record: one ``probe_runs`` row per probe per run, and the history report
read back from them (per probe: runs, pass rate, p50/p95 latency, the last failure).

Latency percentiles are over the runs in which a reply came (a run without one has no
latency to rank); nearest-rank, so p95 of 20 runs is the 19th fastest - a value that was
really measured. Stats are computed here, not in SQL: percentiles are not portable
between SQLite and PostgreSQL, and a week of five-minute runs is a few thousand rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from jingxin.data.store.engine import Store
from jingxin.data.store.models.hall import ProbeRun
from jingxin.probes.runner import RunReport

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def span_of(text: str) -> timedelta | None:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` as a span of time; None for anything else."""
    span = _SPAN.match(text)
    if span is None:
        return None
    return timedelta(**{_SPAN_UNITS[span.group(2)]: float(span.group(1))})


def record_results(store: Store, report: RunReport) -> int:
    """Insert one row per result of ``report`` in one transaction; returns the count."""
    rows = [
        ProbeRun(run_id=report.run_id, probe=r.probe, msisdn=r.msisdn,
                 service_number=r.service_number, sent_text=r.sent_text, expect=r.expect,
                 max_latency_ms=r.max_latency_ms, reply_text=r.reply_text,
                 latency_ms=r.latency_ms, ok=r.ok, reason=r.reason, started_at=r.started_at)
        for r in report.results
    ]  # fmt: skip
    with store.transaction() as session:
        session.add_all(rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class ProbeStats:
    """One probe over the report's period."""

    probe: str
    runs: int
    passed: int
    p50_ms: float | None
    p95_ms: float | None
    last_run_at: datetime
    last_ok: bool
    last_failure_at: datetime | None
    last_failure_reason: str | None

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


@dataclass(frozen=True, slots=True)
class HistoryRow:
    run_id: str
    probe: str
    started_at: datetime
    ok: bool
    latency_ms: float | None
    reply_text: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class History:
    since: datetime | None
    stats: tuple[ProbeStats, ...]  # by probe name
    recent: tuple[HistoryRow, ...]  # newest first, at most the limit asked for


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)]


def probe_history(store: Store, *, probe: str | None = None, since: datetime | None = None,
                  limit: int = 20) -> History:  # fmt: skip
    """The runs since ``since`` (all when None), of one probe or all."""
    query = select(ProbeRun.run_id, ProbeRun.probe, ProbeRun.started_at, ProbeRun.ok,
                   ProbeRun.latency_ms, ProbeRun.reply_text, ProbeRun.reason)  # fmt: skip
    if probe is not None:
        query = query.where(ProbeRun.probe == probe)
    if since is not None:
        query = query.where(ProbeRun.started_at >= since)
    query = query.order_by(ProbeRun.started_at.desc(), ProbeRun.id.desc())
    with store.sessions() as session:
        rows = [HistoryRow(*row) for row in session.execute(query).all()]
    by_probe: dict[str, list[HistoryRow]] = {}
    for row in rows:
        by_probe.setdefault(row.probe, []).append(row)
    stats = tuple(_stats(name, runs) for name, runs in sorted(by_probe.items()))
    return History(since, stats, tuple(rows[: max(0, limit)]))


def _stats(name: str, runs: list[HistoryRow]) -> ProbeStats:
    """``runs`` newest first."""
    latencies = [run.latency_ms for run in runs if run.latency_ms is not None]
    failure = next((run for run in runs if not run.ok), None)
    return ProbeStats(
        probe=name, runs=len(runs), passed=sum(run.ok for run in runs),
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        last_run_at=runs[0].started_at, last_ok=runs[0].ok,
        last_failure_at=failure.started_at if failure else None,
        last_failure_reason=failure.reason if failure else None,
    )  # fmt: skip


def last_runs(store: Store, names: Sequence[str]) -> dict[str, HistoryRow]:
    """The newest run of each probe of ``names`` that ran at all: one indexed look-up per
    probe (``probe``, ``started_at``), however long the history."""
    found: dict[str, HistoryRow] = {}
    with store.sessions() as session:
        for name in names:
            row = session.execute(
                select(ProbeRun.run_id, ProbeRun.probe, ProbeRun.started_at, ProbeRun.ok,
                       ProbeRun.latency_ms, ProbeRun.reply_text, ProbeRun.reason)
                .where(ProbeRun.probe == name)
                .order_by(ProbeRun.started_at.desc(), ProbeRun.id.desc()).limit(1)).first()  # fmt: skip
            if row is not None:
                found[name] = HistoryRow(*row)
    return found

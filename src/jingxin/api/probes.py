"""Dial tests (拨测) over the API: the configured probes with their last result, their
history, and a run - the functions of ``jingxin probe list|history|run``.

Probes are the operator's own test SIMs against its halls: an enterprise's caller gets 404
on every route here, as for anything that is not its own. A run (``probes.run``) talks to
the simulator's HTTP endpoint (``[probing] smsc_url``); when nothing answers there it is
refused with 503 and nothing is recorded (``jingxin probe run`` records the failure of
every probe instead: the scheduler is what should alert on an outage). One run at a time
per process (409 while one goes on); it takes up to ``[probing] timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jingxin.access.principal import Principal
from jingxin.api import auth, errors
from jingxin.api.auth import allow
from jingxin.api.inbox import shown_text
from jingxin.config import Settings
from jingxin.errors import ConfigError

router = APIRouter(prefix="/api/v1", tags=["probes"])

OPERATOR_ONLY = {404: {"description": "Not the operator's tenant: probes are the operator's"}}


class RunOut(BaseModel):
    run_id: str
    probe: str
    started_at: datetime
    ok: bool
    latency_ms: float | None
    reply: str | None
    reason: str | None = Field(description="Why it failed (None: it passed)")


class ProbeOut(BaseModel):
    name: str
    msisdn: str = Field(description="The test SIM (masked without numbers.view)")
    service_number: str
    text: str
    expect: str = Field(description="The regular expression the reply must contain")
    max_latency_ms: int
    last: RunOut | None = Field(description="Its latest run (None: never ran)")


class ProbeList(BaseModel):
    items: list[ProbeOut]
    total: int
    smsc_url: str
    interval_seconds: float
    timeout_seconds: float


class ProbeStatsOut(BaseModel):
    probe: str
    runs: int
    passed: int
    pass_rate: float
    p50_ms: float | None
    p95_ms: float | None
    last_run_at: datetime
    last_ok: bool
    last_failure_at: datetime | None
    last_failure_reason: str | None


class HistoryOut(BaseModel):
    since: datetime
    probes: list[ProbeStatsOut]
    recent: list[RunOut] = Field(description="Newest first, at most limit")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probes: list[str] | None = Field(None, min_length=1, max_length=100,
                                     description="Only these probes (default: all)")


class ResultOut(BaseModel):
    probe: str
    ok: bool
    reason: str | None
    reply: str | None
    latency_ms: float | None
    max_latency_ms: int
    started_at: datetime


class RunReportOut(BaseModel):
    run_id: str
    ok: bool
    results: list[ResultOut]


def _operator(who: Principal) -> None:
    if not who.operator:
        raise errors.ApiError(404, "no probes: dial tests are the operator's")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _probes(settings: Settings, names: list[str] | None = None) -> list[Any]:
    from jingxin.probes import load_probes

    try:
        return load_probes(settings.probes, names=names)
    except ConfigError as exc:
        if names is not None and str(exc).startswith("no probe named"):
            raise errors.ApiError(422, str(exc), field="probes") from exc
        raise errors.ApiError(503, f"the probes are misconfigured: {exc}") from exc


def _run(who: Principal, row: Any) -> dict[str, Any]:
    return {"run_id": row.run_id, "probe": row.probe, "started_at": row.started_at,
            "ok": row.ok, "latency_ms": row.latency_ms,
            "reply": None if row.reply_text is None else shown_text(who, row.reply_text),
            "reason": None if row.reason is None else shown_text(who, row.reason)}  # fmt: skip


@router.get("/probes", response_model=ProbeList, responses=OPERATOR_ONLY)
def list_probes(request: Request,
                who: Principal = Depends(allow("probes.read"))) -> dict[str, Any]:  # fmt: skip
    """The configured probes (``[[probes]]``), each with its latest result."""
    from jingxin.probes import last_runs

    _operator(who)
    settings = _settings(request)
    probes = _probes(settings)
    last = last_runs(request.app.state.store, [p.name for p in probes])
    items = [{"name": p.name, "msisdn": who.number(p.msisdn), "service_number": p.service_number,
              "text": p.text, "expect": p.expect.pattern, "max_latency_ms": p.max_latency_ms,
              "last": _run(who, last[p.name]) if p.name in last else None}
             for p in probes]  # fmt: skip
    probing = settings.probing
    return {"items": items, "total": len(items), "smsc_url": probing.smsc_url,
            "interval_seconds": probing.interval_seconds,
            "timeout_seconds": probing.timeout_seconds}  # fmt: skip


@router.get("/probes/history", response_model=HistoryOut, responses=OPERATOR_ONLY)
def probe_history(
    request: Request,
    name: str | None = Query(None, max_length=64, description="Only this probe"),
    since: str = Query("7d", max_length=40, description=(
        "A span back from now (7d, 12h, 30m) or an ISO instant (bare: the operator's zone)")),
    limit: int = Query(20, ge=0, le=500, description="Recent runs listed"),
    who: Principal = Depends(allow("probes.read")),
) -> dict[str, Any]:
    """Per probe: runs, pass rate, p50/p95 latency, the last failure and why; then the
    recent runs (``jingxin probe history``)."""
    from jingxin.cli.instants import parse_instant
    from jingxin.probes import probe_history as history
    from jingxin.probes.history import span_of

    _operator(who)
    settings = _settings(request)
    span = span_of(since)
    start = datetime.now(UTC) - span if span is not None else parse_instant(
        since, option="since", zone=settings.policy.default_timezone)  # fmt: skip
    found = history(request.app.state.store, probe=name, since=start, limit=limit)
    stats = [{"probe": s.probe, "runs": s.runs, "passed": s.passed,
              "pass_rate": round(s.pass_rate, 4), "p50_ms": s.p50_ms, "p95_ms": s.p95_ms,
              "last_run_at": s.last_run_at, "last_ok": s.last_ok,
              "last_failure_at": s.last_failure_at,
              "last_failure_reason": None if s.last_failure_reason is None
              else shown_text(who, s.last_failure_reason)}
             for s in found.stats]  # fmt: skip
    return {"since": start, "probes": stats, "recent": [_run(who, r) for r in found.recent]}


@router.post("/probes/run", response_model=RunReportOut, responses={
    **OPERATOR_ONLY, 409: {"description": "A run is already going"},
    503: {"description": "The simulator's HTTP endpoint does not answer"}})
async def run_probes(request: Request, body: RunRequest | None = None,
                     who: Principal = Depends(allow("probes.run"))) -> dict[str, Any]:  # fmt: skip
    """Run the dial tests once (``jingxin probe run``): each probe's MO through the
    simulator, its reply checked; every result recorded. Takes up to ``[probing]
    timeout_seconds``."""
    from jingxin.probes import (
        ProbeMetrics,
        SimulatorChannel,
        SimulatorUnreachable,
        run_and_record,
    )

    _operator(who)
    settings = _settings(request)
    probes = _probes(settings, body.probes if body is not None else None)
    if not probes:
        raise errors.ApiError(503, "no probes configured: add [[probes]] entries (name, "
                                   "msisdn, service_number, text, expect) to the settings")  # fmt: skip
    try:
        channel = SimulatorChannel(settings.probing.smsc_url)
    except ConfigError as exc:
        raise errors.ApiError(503, str(exc)) from exc
    lock = _lock(request)
    if lock.locked():
        raise errors.ApiError(409, "a probe run is already going; try again when it is done")
    async with lock:
        try:
            await channel.check()
        except SimulatorUnreachable as exc:
            raise errors.ApiError(503, f"{exc}: start the simulator (`jingxin smsc`) or set "
                                       "[probing] smsc_url; no probe was run") from exc  # fmt: skip
        report = await run_and_record(probes, channel=channel, store=request.app.state.store,
                                      timeout=settings.probing.timeout_seconds,
                                      metrics=ProbeMetrics())  # fmt: skip
    await asyncio.to_thread(_audit, request, who, report)
    return {"run_id": report.run_id, "ok": report.ok, "results": [
        {"probe": r.probe, "ok": r.ok, "reason": None if r.reason is None else shown_text(who, r.reason),
         "reply": None if r.reply_text is None else shown_text(who, r.reply_text),
         "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1),
         "max_latency_ms": r.max_latency_ms, "started_at": r.started_at}
        for r in report.results]}  # fmt: skip


def _lock(request: Request) -> asyncio.Lock:
    lock = getattr(request.app.state, "probe_run_lock", None)
    if lock is None:
        lock = request.app.state.probe_run_lock = asyncio.Lock()
    return lock


def _audit(request: Request, who: Principal, report: Any) -> None:
    with request.app.state.store.transaction() as session:
        auth.audit(session, who, "probes.run", "probe_run", report.run_id,
                   {"probes": len(report.results), "failed": len(report.failed)})  # fmt: skip

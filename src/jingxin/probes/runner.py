"""Run dial tests: send each probe's MO, wait for the reply, judge it, record and alert.

A probe passes when the first MT to its number after its MO arrives within
``[probing] timeout_seconds``, matches ``expect`` (``re.search``) and came within
``max_latency_ms`` of the MO being sent (the probe's own clock, from just before the MO
is posted to when the reply is seen). Probes run concurrently (at most ``concurrency``
at once), except that probes sharing a number run one after another: a reply to one
number cannot tell which of two MO it answers. (A reply that comes after its probe gave up
is still seen by the next probe of that number: give probes whose timeouts are expected
numbers of their own.)

Order of effects per run (:func:`run_and_record`): results → the log (ERROR per failure:
the log is the alert) → metrics → the ``probe_runs`` rows. Alerting comes before the
store, so a store that is down does not silence a failing hall. A probe only reads and
writes ``probe_runs``; the reply it checks travels the ordinary road (inbox, handlers,
outbox, worker) and the probe never touches that road's tables.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jingxin.data.store.engine import Store
from jingxin.errors import ChannelError
from jingxin.probes.channel import ProbeChannel, Reply, SimulatorUnreachable
from jingxin.probes.metrics import ProbeMetrics
from jingxin.probes.probe import Probe

log = logging.getLogger("jingxin.probes")

DEFAULT_CONCURRENCY = 8
POLL_WAIT = 1.0  # seconds one GET /mt may be held by the simulator
REPLY_SHOWN = 60  # characters of a wrong reply quoted in the reason


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe sent, what came back, and the verdict."""

    probe: str
    msisdn: str
    service_number: str
    sent_text: str
    expect: str
    max_latency_ms: int
    ok: bool
    reason: str | None  # why it failed; None when it passed
    reply_text: str | None
    latency_ms: float | None  # MO sent → reply seen; None without a reply
    started_at: datetime


@dataclass(frozen=True, slots=True)
class RunReport:
    """One ``probe run``: its id, a result per probe (settings order), and - when the
    channel did not answer at all - the one reason every probe failed for."""

    run_id: str
    results: tuple[ProbeResult, ...]
    unreachable: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failed(self) -> list[ProbeResult]:
        return [result for result in self.results if not result.ok]


def new_run_id(now: datetime | None = None) -> str:
    """``probe-20261123T040000Z-3f9a1c``: sortable by time, unique across schedulers."""
    return f"probe-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def judge(probe: Probe, reply: str | None, latency_ms: float | None, *, timeout: float) -> str | None:
    """Why ``reply`` fails ``probe`` (reasons joined by '; '), or None when it passes."""
    if reply is None or latency_ms is None:
        return f"no reply within {timeout:g} s"
    reasons = []
    if probe.expect.search(reply) is None:
        shown = reply if len(reply) <= REPLY_SHOWN else reply[: REPLY_SHOWN - 1] + "…"
        reasons.append(f"reply '{shown}' does not match /{probe.expect.pattern}/")
    if latency_ms > probe.max_latency_ms:
        reasons.append(f"latency {latency_ms:.0f} ms > {probe.max_latency_ms} ms")
    return "; ".join(reasons) or None


async def run_probe(probe: Probe, *, channel: ProbeChannel, timeout: float) -> ProbeResult:
    """Send ``probe``'s MO and wait up to ``timeout`` s for the first MT to its number
    after it. A channel error is the probe's failure, never the run's."""
    started_at = datetime.now(UTC)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    reply: Reply | None = None
    latency_ms: float | None = None
    try:
        cursor = await channel.send_mo(source=probe.msisdn, destination=probe.service_number,
                                       text=probe.text)  # fmt: skip
        while (left := sent + timeout - loop.time()) > 0:
            replies = await channel.replies(to=probe.msisdn, after=cursor, wait=min(left, POLL_WAIT))
            if replies:
                reply, latency_ms = replies[0], (loop.time() - sent) * 1000.0
                break
    except ChannelError as exc:
        return _result(probe, started_at, reason=str(exc))
    text = reply.text if reply is not None else None
    return _result(probe, started_at, reply_text=text, latency_ms=latency_ms,
                   reason=judge(probe, text, latency_ms, timeout=timeout))  # fmt: skip


def _result(probe: Probe, started_at: datetime, *, reason: str | None,
            reply_text: str | None = None, latency_ms: float | None = None) -> ProbeResult:  # fmt: skip
    return ProbeResult(probe.name, probe.msisdn, probe.service_number, probe.text,
                       probe.expect.pattern, probe.max_latency_ms, reason is None, reason,
                       reply_text, latency_ms, started_at)  # fmt: skip


async def run_probes(
    probes: Sequence[Probe], *, channel: ProbeChannel, timeout: float,
    concurrency: int = DEFAULT_CONCURRENCY, run_id: str | None = None,
) -> RunReport:  # fmt: skip
    """Run every probe; results in the order of ``probes``. The channel is asked once
    first: when nothing answers, every probe fails with that one reason, none is sent."""
    run_id = run_id or new_run_id()
    try:
        await channel.check()
    except SimulatorUnreachable as exc:
        now = datetime.now(UTC)
        failed = tuple(_result(probe, now, reason=str(exc)) for probe in probes)
        return RunReport(run_id, failed, unreachable=str(exc))
    by_number: dict[str, list[int]] = {}
    for index, probe in enumerate(probes):
        by_number.setdefault(probe.msisdn, []).append(index)
    results: list[ProbeResult | None] = [None] * len(probes)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one_number(indexes: list[int]) -> None:
        for index in indexes:
            async with gate:
                results[index] = await run_probe(probes[index], channel=channel, timeout=timeout)

    await asyncio.gather(*(one_number(indexes) for indexes in by_number.values()))
    return RunReport(run_id, tuple(result for result in results if result is not None))


def alert(report: RunReport) -> None:
    """Log the run: ERROR per failed probe (named), or once for an unreachable channel."""
    if report.unreachable is not None:
        names = ", ".join(result.probe for result in report.results)
        log.error("probe run %s: %s; every probe failed (%s)", report.run_id, report.unreachable,
                  names or "none configured", extra={"run_id": report.run_id})  # fmt: skip
        return
    for result in report.results:
        if result.ok:
            log.info("probe %s ok: %.0f ms", result.probe, result.latency_ms or 0.0,
                     extra={"probe": result.probe, "run_id": report.run_id})  # fmt: skip
        else:
            log.error("probe %s failed: %s", result.probe, result.reason,
                      extra={"probe": result.probe, "run_id": report.run_id})  # fmt: skip


async def run_and_record(
    probes: Sequence[Probe], *, channel: ProbeChannel, store: Store, timeout: float,
    metrics: ProbeMetrics | None = None, concurrency: int = DEFAULT_CONCURRENCY,
) -> RunReport:  # fmt: skip
    """One whole run: probes, the log, metrics, then one ``probe_runs`` row per probe."""
    from jingxin.probes.history import record_results

    report = await run_probes(probes, channel=channel, timeout=timeout, concurrency=concurrency)
    alert(report)
    if metrics is not None:
        metrics.observe(report.results)
    await asyncio.to_thread(record_results, store, report)
    return report

"""``jingxin scheduler``: the periodic work of the hall - dial tests every interval, then the
hall's reconciliation of orders whose BOSS call timed out - and of the journeys (the daily
scans and the due steps, :class:`jingxin.journeys.schedule.JourneyDuties`).

One scheduler at a time: :class:`LeasedTick` runs a tick's parts only while this process
holds the ``scheduler`` lease in the store; a second scheduler (another machine) says who
holds it until when, and waits - it runs nothing until the lease is released or expires.

Runs never overlap: a tick starts ``interval`` after the previous one started, or at once
when the previous one took longer (the missed slots are skipped, not made up in a burst).
A tick that raises - the store down, the simulator gone - is logged and the next one runs
on time: the scheduler is what notices an outage, it must not be stopped by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jingxin.config import Settings
from jingxin.data.store.engine import Store
from jingxin.probes.channel import ProbeChannel
from jingxin.probes.metrics import ProbeMetrics
from jingxin.probes.probe import Probe
from jingxin.probes.runner import RunReport, run_and_record

log = logging.getLogger("jingxin.scheduler")

Tick = Callable[[int], Awaitable[Any]]


async def run_schedule(tick: Tick, *, interval: float, iterations: int | None = None,
                       stop: asyncio.Event | None = None) -> int:  # fmt: skip
    """Call ``tick(n)`` (n = 1, 2, ...) every ``interval`` seconds until ``stop`` is set or
    ``iterations`` ticks have run; returns how many ran."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    due = loop.time()
    done = 0
    while not stop.is_set() and (iterations is None or done < iterations):
        done += 1
        try:
            await tick(done)
        except Exception:  # noqa: BLE001 - one bad tick must not end the schedule
            log.exception("scheduled run %d failed; the next runs on schedule", done)
        if iterations is not None and done >= iterations:
            break
        due += interval
        if due < loop.time():
            log.warning("scheduled run %d took longer than the interval (%g s); the next "
                        "starts now", done, interval)  # fmt: skip
            due = loop.time()
        try:
            await asyncio.wait_for(stop.wait(), due - loop.time())
        except TimeoutError:
            pass
    return done


@dataclass
class HallTick:
    """One scheduled run: the dial tests, then the hall's reconcile hook. Each part's
    failure is logged on its own, so a failing probe run still reconciles."""

    settings: Settings
    store: Store
    probes: Sequence[Probe]
    channel: ProbeChannel
    metrics: ProbeMetrics | None = None
    on_report: Callable[[RunReport], None] | None = None
    reconcile: Callable[[Settings, Store], Any] | None = None

    async def __call__(self, n: int) -> RunReport | None:
        report = None
        if self.probes:
            try:
                report = await run_and_record(self.probes, channel=self.channel, store=self.store,
                                              timeout=self.settings.probing.timeout_seconds,
                                              metrics=self.metrics)  # fmt: skip
            except Exception:  # noqa: BLE001 - logged; the reconcile below still runs
                log.exception("scheduled run %d: the dial tests could not run", n)
            if report is not None and self.on_report is not None:
                self.on_report(report)
        reconcile = self.reconcile or hall_reconcile
        try:
            await asyncio.to_thread(reconcile, self.settings, self.store)
        except Exception:  # noqa: BLE001 - a reconcile error waits for the next tick
            log.exception("scheduled run %d: the hall reconcile failed", n)
        return report


# The hall's order reconciliation: an order whose BOSS call timed out is 'unknown';
# reconcile asks the BOSS for it by request_key and settles it - never places it again.


def hall_reconcile(settings: Settings, store: Store) -> Any:
    """Run :func:`jingxin.hall.orders.reconcile` once when the hall is enabled; returns
    its tally (None when skipped)."""
    if not settings.hall.enabled:
        return None
    from jingxin.hall.context import HallContext
    from jingxin.hall.orders import reconcile

    context = HallContext.from_settings(settings, store, now=datetime.now(UTC))
    tally = reconcile(context)
    # Said at INFO only when there was something to settle: every five minutes of
    # "checked=0" would bury the lines that matter.
    log.log(logging.INFO if getattr(tally, "checked", 1) else logging.DEBUG, "hall reconcile: %s", tally)
    return tally


# One scheduler at a time: a lease in the store, renewed before each part of a tick.


@dataclass
class LeasedTick:
    """Runs ``parts`` (ticks: the hall's, the journeys') in order, only while ``holder``
    holds the lease ``name``; otherwise ``on_held`` is told who does, and nothing runs.
    The lease is renewed before each part; ``ttl`` must outlast the longest part."""

    store: Store
    holder: str
    ttl: timedelta
    parts: list[Tick] = field(default_factory=list)
    name: str = "scheduler"
    on_held: Callable[[Any], None] | None = None

    async def __call__(self, n: int) -> bool:
        from jingxin.journeys.schedule import acquire

        lease = await asyncio.to_thread(acquire, self.store, self.name, self.holder, ttl=self.ttl)
        if not lease.acquired:
            log.warning("scheduled run %d: the lock %r is held by %s until %s; waiting",
                        n, self.name, lease.holder, lease.expires_at.isoformat())  # fmt: skip
            if self.on_held is not None:
                self.on_held(lease)
            return False
        for index, part in enumerate(self.parts):
            if index and not await asyncio.to_thread(self.keep):
                log.warning("scheduled run %d: the lock %r was lost; the rest waits", n, self.name)
                return False
            try:
                await part(n)
            except Exception:  # noqa: BLE001 - one part's failure leaves the others to run
                log.exception("scheduled run %d: part %d failed", n, index + 1)
        return True

    def keep(self) -> bool:
        """Renew the lease; False when another scheduler took it over."""
        from jingxin.journeys.schedule import renew

        return renew(self.store, self.name, self.holder, ttl=self.ttl)

    def release(self) -> None:
        from jingxin.journeys.schedule import release

        release(self.store, self.name, self.holder)

"""``jingxin scheduler``: the periodic work of the hall - dial tests every interval, then the
hall's reconciliation of orders whose BOSS call timed out.

Runs never overlap: a tick starts ``interval`` after the previous one started, or at once
when the previous one took longer (the missed slots are skipped, not made up in a burst).
A tick that raises - the store down, the simulator gone - is logged and the next one runs
on time: the scheduler is what notices an outage, it must not be stopped by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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

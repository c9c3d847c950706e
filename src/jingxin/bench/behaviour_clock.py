"""Delivering a campaign on a simulated clock, for ``jingxin bench behaviour``.

A campaign planned over a day (``send_time``) is sent in seconds, not in a day: the worker
is the real one (:func:`jingxin.dispatch.bootstrap.build_worker`, the SMSC simulator over
SMPP on loopback, receipts and all), but its clock is a :class:`SimulatedClock` (and each
channel's submits are stamped with it: :class:`ClockedChannel`), which the driver moves
through the campaign's day in steps of ``step_minutes``. At each step the worker claims
what is due by then, submits it and records it at the step's instant; the driver moves on
only when nothing due is still queued or being submitted, and at the end waits for every
receipt. So ``messages.submitted_at`` is the planned instant rounded up to the end of its
step, never into the next hour (steps end one millisecond before each ``step_minutes``
boundary, and the step divides an hour), and the simulated subscribers, who read a
message at its ``submitted_at`` (``smsc.subscribers``), read it in the hour the plan chose.
Without this the worker would send a whole day's plan at once, at the wall clock's hour.

The simulator runs as a process of its own (:func:`simulator`), as the demo runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store

POLL_SECONDS = 0.02
STUCK_SECONDS = 60.0  # a step that makes no progress this long fails the benchmark
RECEIPT_DELAY = 0.02  # seconds the simulator waits before a delivery receipt


class SimulatedClock:
    """A clock that says what it is told: the worker's ``clock``."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


class ClockedChannel:
    """A real channel whose submits are stamped by the simulated clock: the channel stamps
    ``SubmitResult.submitted_at`` with the wall clock, which becomes
    ``messages.submitted_at``. Everything else is the channel's own."""

    def __init__(self, inner: Any, clock: SimulatedClock) -> None:
        from jingxin.dispatch.routing import bound_probe

        self.inner, self.clock, self.name = inner, clock, inner.name
        self._bound = bound_probe({inner.name: inner})

    @property
    def bound(self) -> bool:
        return self._bound(self.name)

    async def start(self) -> None:
        await self.inner.start()

    async def submit(self, message: Any) -> Any:
        result = await self.inner.submit(message)
        return dataclasses.replace(result, submitted_at=self.clock())

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else the worker may ask
        return getattr(self.inner, name)


@contextmanager
def simulator(log_path: Path) -> Iterator[list[dict[str, Any]]]:
    """``python -m jingxin.smsc`` on a free loopback port (every message delivered); yields
    the ``[[channels]]`` entries pointing at it."""
    from jingxin.smsc.spawn import free_port, stop, wait_listening

    port = free_port()
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "jingxin.smsc", "--smpp-port", str(port),
               "--receipt-delay", str(RECEIPT_DELAY)]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process)
        yield [{"name": "sim-smpp", "protocol": "smpp", "port": port, "window": 50}]
    finally:
        stop(process)
        log.close()


def steps(first: dt.datetime, last: dt.datetime, minutes: int) -> list[dt.datetime]:
    """Instants one millisecond before each ``minutes`` boundary, from the one after
    ``first`` to the one at or after ``last``."""
    if minutes < 1 or 60 % minutes:
        raise ValueError(f"step_minutes {minutes}: must divide an hour (1, 2, ..., 30, 60)")
    size = dt.timedelta(minutes=minutes)
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # whole hours in every zone we use
    start = epoch + ((first - epoch) // size) * size
    out = []
    edge = start + size
    while True:
        out.append(edge - dt.timedelta(milliseconds=1))
        if edge > last:
            return out
        edge += size


def deliver(settings: Settings, store: Store, *, campaign_id: int,
            step_minutes: int = 10) -> dict[str, Any]:  # fmt: skip
    """Send the campaign's queued messages on the simulated clock (module docstring);
    returns the steps taken, the wall seconds and the worker's tally."""
    from jingxin.data.store.models import Message

    with store.sessions() as session:
        first, last = session.execute(
            select(func.min(Message.scheduled_at), func.max(Message.scheduled_at))
            .where(Message.campaign_id == campaign_id, Message.state == "queued")).one()  # fmt: skip
    if first is None:
        return {"steps": 0, "seconds": 0.0, "worker": {}}
    instants = steps(first, last, step_minutes)
    started = time.perf_counter()
    tally = asyncio.run(_drive(settings, store, instants))
    return {"steps": len(instants), "seconds": round(time.perf_counter() - started, 2),
            "first": first.isoformat(), "last": last.isoformat(),
            "worker": {k: v for k, v in tally.__dict__.items() if v}}  # fmt: skip


async def _drive(settings: Settings, store: Store, instants: list[dt.datetime]) -> Any:
    from jingxin.channels.registry import build_channel
    from jingxin.dispatch.bootstrap import build_worker, close_channels, start_channels

    clock = SimulatedClock(instants[0])

    def clocked(channel_settings: Any, **handlers: Any) -> ClockedChannel:
        return ClockedChannel(build_channel(channel_settings, **handlers), clock)

    worker = build_worker(settings, store, channel_factory=clocked)
    worker.clock = clock
    await start_channels(worker)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop=stop))
    try:
        for instant in instants:
            clock.at = instant
            await _until(lambda at=instant: _due(store, at) == 0, running,
                         what=f"sending what was due by {instant.isoformat()}")  # fmt: skip
        await _until(lambda: _in_flight(store) == 0, running, what="waiting for receipts")
    finally:
        stop.set()
        tally = await running
        await close_channels(worker)
    return tally


async def _until(done: Any, running: asyncio.Task, *, what: str) -> None:
    """Poll ``done()`` (in a thread: it reads the store) until true; the worker dying or
    :data:`STUCK_SECONDS` without it is an error saying ``what``."""
    deadline = time.monotonic() + STUCK_SECONDS
    while not await asyncio.to_thread(done):
        if running.done():
            running.result()  # raises the worker's error, if it had one
            raise RuntimeError(f"the worker stopped while {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no progress for {STUCK_SECONDS:.0f} s while {what}")
        await asyncio.sleep(POLL_SECONDS)


def _due(store: Store, at: dt.datetime) -> int:
    """Messages due by ``at`` not yet sent: queued, or claimed and not answered."""
    from jingxin.data.store.models import Message

    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message).where(
            Message.state.in_(("queued", "submitting")), Message.scheduled_at <= at)) or 0


def _in_flight(store: Store) -> int:
    """Messages submitted and still waiting for their receipt."""
    from jingxin.data.store.models import Message

    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message).where(
            Message.state.in_(("submitting", "submitted")))) or 0

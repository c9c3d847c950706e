"""SMSC simulators for dispatch tests: on its own event loop in a thread (as a separate SMSC
would be), or as a real ``jingxin smsc`` process that a crash test can kill -9; and real
``jingxin worker`` processes (both through :mod:`jingxin.bench.harness`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Self

import pytest

from jingxin.bench.harness import Fleet
from jingxin.smsc.behaviour import preset
from jingxin.smsc.server import Simulator


class ThreadedSimulator:
    def __init__(self, behaviour) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.sim: Simulator | None = None
        self.behaviour = behaviour

    async def _serve(self) -> None:
        async with Simulator(behaviour=self.behaviour) as sim:
            self.sim, self._stop = sim, asyncio.Event()
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self._serve()), daemon=True
        )
        self.thread.start()
        assert self.ready.wait(10), "the simulator did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def simulator_port():
    with ThreadedSimulator(preset("happy")) as threaded:
        yield threaded.sim.smpp_port


@pytest.fixture
def threaded_simulator():
    """A factory: ``with threaded_simulator(behaviour) as t: t.sim.smpp_port``."""
    return ThreadedSimulator


# --------------------------------------------------------------------------- real processes
# The process harness lives in the product (jingxin.bench.harness), where the crash
# benchmarks use it; these fixtures only tie it to a test's tmp dir and clean-up.


@pytest.fixture
def fleet(tmp_path) -> Iterator[Fleet]:
    """A :class:`~jingxin.bench.harness.Fleet` in ``tmp_path``: ``fleet.smsc(...)``,
    ``fleet.worker(env, name)``; whatever still runs is stopped at the end of the test."""
    with Fleet(tmp_path) as started:
        yield started


@pytest.fixture
def smsc_process(fleet):
    """A factory: ``smsc_process(latency=.., receipt_delay=..)`` → a started
    :class:`~jingxin.bench.harness.SmscProcess`."""
    return fleet.smsc


@pytest.fixture
def worker_process(fleet):
    """A factory: ``worker_process(env, name, *args)`` → a running ``jingxin worker`` whose
    logs go to ``tmp_path/<name>.log``; env from ``jingxin.bench.harness.worker_env``."""
    return fleet.worker

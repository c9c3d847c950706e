"""A simulator on its own event loop in a thread, as a separate SMSC would be."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

import pytest

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

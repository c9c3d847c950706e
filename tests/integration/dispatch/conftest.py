"""SMSC simulators for dispatch tests: on its own event loop in a thread (as a separate SMSC
would be), or as a real ``jingxin smsc`` process that a crash test can kill -9; and real
``jingxin worker`` processes."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

import pytest

from jingxin.smsc.behaviour import preset
from jingxin.smsc.server import Simulator
from jingxin.smsc.spawn import free_port, wait_listening


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

JINGXIN = str(Path(sys.executable).with_name("jingxin"))

def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child ``jingxin``: no settings file, JSON logs, plus ``extra``."""
    return {
        **os.environ,
        "JINGXIN_CONFIG": str(tmp_path / "none.toml"),
        "JINGXIN_LOG__FORMAT": "json",
        **extra,
    }


class SmscProcess:
    """``jingxin smsc`` in its own process on a fixed port; every start (after a kill -9)
    gets its own JSONL record, and :meth:`submits` counts over all of them."""

    def __init__(self, tmp_path: Path, *, latency: float, receipt_delay: float) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.flags = ["--latency", str(latency), "--receipt-delay", str(receipt_delay)]
        self.process: subprocess.Popen | None = None
        self.records: list[Path] = []
        self.logs: list[Path] = []

    def start(self, timeout: float = 20.0) -> None:
        n = len(self.records)
        self.records.append(self.tmp_path / f"smsc-{n}.jsonl")
        self.logs.append(self.tmp_path / f"smsc-{n}.log")
        command = [JINGXIN, "smsc", "--no-cmpp",
                   "--http-port", "0", "--smpp-port", str(self.port),
                   "--record", str(self.records[-1]), *self.flags]  # fmt: skip
        with open(self.logs[-1], "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, env=base_env(self.tmp_path),
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_listening(self.port, self.process, timeout=timeout)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{self.logs[-1].read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no unbind, no goodbye, pending receipts lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Ctrl-C: the simulator closes its record."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def submits(self) -> collections.Counter[str]:
        """submit_sm received per destination, over every run of the simulator."""
        counted: collections.Counter[str] = collections.Counter()
        for path in self.records:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    if '"submit_sm"' in line:
                        counted[json.loads(line)["fields"]["destination_addr"]] += 1
        return counted


@pytest.fixture
def smsc_process(tmp_path):
    """A factory: ``smsc_process(latency=.., receipt_delay=..)`` → a started
    :class:`SmscProcess`; stopped at the end of the test."""
    started: list[SmscProcess] = []

    def start(*, latency: float = 0.001, receipt_delay: float = 0.01) -> SmscProcess:
        smsc = SmscProcess(tmp_path, latency=latency, receipt_delay=receipt_delay)
        started.append(smsc)
        smsc.start()
        return smsc

    yield start
    for smsc in started:
        smsc.stop()


@pytest.fixture
def worker_process(tmp_path):
    """A factory: ``worker_process(env, name)`` → a running ``jingxin worker`` whose stderr
    (its logs) goes to ``tmp_path/<name>.log``; any still running is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], name: str, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
        process = subprocess.Popen([JINGXIN, "worker", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        log.close()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)

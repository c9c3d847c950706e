"""Fake halls for dial tests: an ESME bound to the real simulator that answers each MO
as its scenario says (right, wrong, slow, silent), named for the behaviour."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.session import SessionConfig
from jingxin.domain.sms import OutboundSms
from jingxin.probes import Probe

# text of the MO -> (reply text or None for silence, seconds before answering)
Answer = Callable[[str], tuple[str | None, float]]


def probe(name: str = "balance", *, text: str = "CXYE", expect: str = r"余额\d+元",
          msisdn: str = "+8613900000001", max_latency_ms: int = 2000) -> Probe:
    return Probe(name, msisdn, "10086", text, re.compile(expect), max_latency_ms)


def balance_hall(text: str) -> tuple[str | None, float]:
    """Answers every MO at once with a balance."""
    return "【中国移动】您的余额12元。", 0.0


@dataclass
class FakeHall:
    """An ESME on the simulator's SMPP port answering MO with ``answer``."""

    port: int
    answer: Answer = balance_hall
    heard: list[str] = field(default_factory=list)

    async def __aenter__(self) -> FakeHall:
        self.channel = SmppChannel(name="fake-hall", config=SessionConfig(port=self.port),
                                   source_addr="10086", on_mo=self._on_mo)
        self._tasks: set[asyncio.Task] = set()
        await self.channel.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await self.channel.close()

    def _on_mo(self, mo) -> None:  # noqa: ANN001 - an InboundSms
        self.heard.append(mo.text)
        reply, delay = self.answer(mo.text)
        if reply is not None:
            task = asyncio.ensure_future(self._reply(mo.source, reply, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reply(self, to: str, text: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.channel.submit(OutboundSms(destination=to, text=text, registered_delivery=False))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedHall:
    """The simulator (HTTP MO endpoint on) and a :class:`FakeHall` on their own event loop
    in a thread, as a separate SMSC and worker would be: for commands that run their own
    ``asyncio.run``."""

    def __init__(self, answer: Answer = balance_hall) -> None:
        self.answer = answer
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""

    async def _serve(self) -> None:
        from jingxin.smsc.server import Simulator

        async with Simulator(http_port=0) as sim, FakeHall(sim.smpp_port, self.answer):
            self.url = f"http://127.0.0.1:{sim.http_port}"
            self._stop = asyncio.Event()
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedHall:
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),),
                                       daemon=True)  # fmt: skip
        self.thread.start()
        assert self.ready.wait(10), "the simulator did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()

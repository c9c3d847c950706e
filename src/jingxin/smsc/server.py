"""The simulator runner: SMPP (and CMPP, when its server is present) plus the MO endpoint.

In tests::

    async with Simulator(behaviour=preset("happy")) as sim:
        ... connect to 127.0.0.1:sim.smpp_port; sim.record holds what arrived ...

From the command line: ``jingxin smsc`` (or ``python -m jingxin.smsc``) runs
:func:`serve` until interrupted and prints the listening ports.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import inspect
import logging
from typing import Any

from jingxin.errors import ChannelError
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.mo import start_mo_endpoint
from jingxin.smsc.record import Record
from jingxin.smsc.smpp_server import SmppSmsc, start_smpp_server

log = logging.getLogger(__name__)


def listen_error(what: str, host: str, port: int, exc: BaseException) -> str:
    """One line for a listener that cannot open its port (the flag to change it named)."""
    flag = {"SMPP": "--smpp-port", "CMPP": "--cmpp-port", "MO HTTP": "--http-port"}[what]
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        why = "the port is already in use (another simulator running?)"
    else:
        why = getattr(exc, "strerror", None) or str(exc)
    return f"{what} server cannot listen on {host}:{port}: {why}; choose another with {flag}"


class Simulator:
    """A running simulated SMSC. Ports given as 0 are picked free; None disables a server."""

    def __init__(
        self,
        *,
        behaviour: Behaviour | None = None,
        host: str = "127.0.0.1",
        smpp_port: int | None = 0,
        cmpp_port: int | None = None,
        http_port: int | None = None,
        record: Record | None = None,
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.host = host
        self.record = record if record is not None else Record()
        self._wanted = {"smpp": smpp_port, "cmpp": cmpp_port, "http": http_port}
        self.smpp_port: int | None = None
        self.cmpp_port: int | None = None
        self.http_port: int | None = None
        self.smpp: SmppSmsc | None = None
        self.cmpp: Any = None  # whatever the CMPP server returns beside its asyncio.Server
        self._servers: list[asyncio.Server] = []

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on every wanted port; a port that is taken is ONE ChannelError naming the
        listener and the port, and nothing stays open."""
        try:
            await self._start_servers()
        except ChannelError:
            await self.close()
            raise

    async def _start_servers(self) -> None:
        if self._wanted["smpp"] is not None:
            port = self._wanted["smpp"]
            server, self.smpp = await self._listening("SMPP", port, start_smpp_server(
                host=self.host, port=port, behaviour=self.behaviour, record=self.record))
            self.smpp_port = self._track(server)
        if self._wanted["cmpp"] is not None:
            await self._start_cmpp(self._wanted["cmpp"])
        if self._wanted["http"] is not None:
            port = self._wanted["http"]
            server = await self._listening("MO HTTP", port, start_mo_endpoint(
                host=self.host, port=port, inject=self.inject_mo, status=self.status,
                handsets=self.record.handsets))
            self.http_port = self._track(server)

    async def _listening(self, what: str, port: int, starting: Any) -> Any:
        try:
            return await starting
        except (OSError, OverflowError) as exc:
            raise ChannelError(listen_error(what, self.host, port, exc)) from exc

    async def _start_cmpp(self, port: int) -> None:
        # Hook for the CMPP server (smsc/cmpp_server.py, owned by the CMPP side):
        # ``async def start_cmpp_server(*, host, port, behaviour, record)`` returning an
        # asyncio.Server, or (server, state) where state may offer inject_mo(...).
        try:
            module = importlib.import_module("jingxin.smsc.cmpp_server")
        except ImportError:
            log.warning("CMPP server not available (jingxin.smsc.cmpp_server missing); CMPP off")
            return
        started = await self._listening("CMPP", port, module.start_cmpp_server(
            host=self.host, port=port, behaviour=self.behaviour, record=self.record))
        server, self.cmpp = started if isinstance(started, tuple) else (started, None)
        self.cmpp_port = self._track(server)

    def _track(self, server: asyncio.Server) -> int:
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    def inject_mo(self, *, source: str, destination: str, text: str) -> int:
        """Deliver an MO to a bound SMPP receiver, else to a CMPP client; returns parts sent."""
        if self.smpp is not None and self.smpp.receivers():
            return self.smpp.inject_mo(source=source, destination=destination, text=text)
        inject = getattr(self.cmpp, "inject_mo", None)
        if inject is not None:
            result = inject(source=source, destination=destination, text=text)
            return result if isinstance(result, int) else 1
        raise LookupError("no client is bound to receive MO messages")

    def status(self) -> dict[str, Any]:
        smpp = self.smpp
        return {
            "smpp_port": self.smpp_port,
            "cmpp_port": self.cmpp_port,
            "received": dict(self.record.counts),
            "receipts_sent": smpp.receipts_sent if smpp else 0,
            "receipts_resent": smpp.receipts_resent if smpp else 0,
            "mo_sent": smpp.mo_sent if smpp else 0,
            "smpp_connections": len(smpp.connections) if smpp else 0,
        }

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        if self.smpp is not None:
            for conn in list(self.smpp.connections):
                conn.close()
        if self.cmpp is not None and hasattr(self.cmpp, "close"):
            self.cmpp.close()
        for server in self._servers:
            closing = server.wait_closed()
            if inspect.isawaitable(closing):
                try:
                    await asyncio.wait_for(closing, 2.0)
                except TimeoutError:
                    pass
        self._servers.clear()
        self.record.close()


async def serve(simulator: Simulator, *, announce: Any = print) -> None:
    """Run ``simulator`` until cancelled; ``announce`` gets one line per listening port."""
    async with simulator:
        for name in ("smpp", "cmpp", "http"):
            port = getattr(simulator, f"{name}_port")
            if port is not None:
                announce(f"{name} listening on {simulator.host}:{port}")
        await asyncio.Event().wait()

"""One CMPP 2.0 connection from the SP to an ISMG: CONNECT, requests matched to responses
by Sequence_Id, the sliding window, ACTIVE_TEST keep-alive and TERMINATE.

An :class:`asyncio.Protocol` rather than streams: bytes go straight from the socket to the
:class:`~jingxin.channels.cmpp.framer.Framer`, and each request is written without
awaiting ``drain`` (the window already bounds what can be outstanding).

Link timing follows PROTOCOLS.md §3.13: ACTIVE_TEST after ``active_test_interval`` s
without anything received (the spec says C = 180 s; we default to 30 s like SMSGate);
after ``max_missed_active_tests`` (N = 3) unanswered tests the peer is dead and the link
closes. A request unanswered after ``response_timeout`` (T = 60 s) fails as unresolved.
Requests the ISMG sends us (DELIVER, …) go to ``on_request``; ACTIVE_TEST and TERMINATE
are answered here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from jingxin.channels.cmpp.framer import Framer
from jingxin.channels.cmpp.pdu import (
    ActiveTest,
    ActiveTestResp,
    Pdu,
    Terminate,
    TerminateResp,
    encode,
)
from jingxin.channels.cmpp.results import SubmitError
from jingxin.channels.cmpp.window import Window
from jingxin.channels.writer import BatchedWriter
from jingxin.errors import ChannelError, ProtocolError, Retry

log = logging.getLogger(__name__)

_RESPONSE_BIT = 0x80000000


class LinkDown(Retry):
    """The link was closed before this request was written: nothing reached the ISMG, so
    the request may be sent again on the next link (the channel does, up to 3 times)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=1.0)


@dataclass(frozen=True)
class LinkOptions:
    window: int = 16  # §3.13 W
    connect_timeout: float = 10.0
    response_timeout: float = 60.0  # §3.13 T
    active_test_interval: float = 30.0  # §3.13 C is 180 s; SMSGate uses 30 s
    max_missed_active_tests: int = 3  # §3.13 N
    terminate_timeout: float = 5.0


class Link(asyncio.Protocol):
    """The transport-level session; :class:`~jingxin.channels.cmpp.client.CmppChannel` drives it."""

    def __init__(
        self, *, peer: str, options: LinkOptions, on_request: Callable[[Link, Pdu], None]
    ) -> None:
        self.peer = peer
        self._options = options
        self._on_request = on_request
        self._framer = Framer()
        self._pending: dict[int, tuple[asyncio.Future[Pdu], asyncio.TimerHandle]] = {}
        self._sequence = 0
        self.window = Window(options.window)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._last_received = self._loop.time()
        self._missed_tests = 0
        self._error: ChannelError | None = None
        self._close_reason = "connection lost"
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._keepalive: asyncio.Task[None] | None = None
        self._writer = BatchedWriter(flush_at=options.window)

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._writer.attach(transport)

    def data_received(self, data: bytes) -> None:
        try:
            pdus = self._framer.feed(data)
        except ProtocolError as exc:
            self.abort(f"bad PDU from the ISMG: {exc}")
            return
        self._last_received = self._loop.time()
        self._missed_tests = 0
        for pdu in pdus:
            self._dispatch(pdu)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._close_reason if exc is None else f"{self._close_reason}: {exc}"
        self._error = ChannelError(f"CMPP link to {self.peer} closed ({reason})")
        self.window.fail(lambda: LinkDown(f"CMPP link to {self.peer} closed ({reason}) before sending"))
        pending, self._pending = self._pending, {}
        for future, timer in pending.values():
            timer.cancel()
            if not future.done():
                future.set_exception(
                    SubmitError(
                        f"CMPP link to {self.peer} closed ({reason}) with the request "
                        "unanswered: unresolved, the ISMG may or may not have it",
                        unresolved=True,
                    )
                )
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    # -- incoming ----------------------------------------------------------------------
    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.COMMAND & _RESPONSE_BIT:
            entry = self._pending.pop(pdu.sequence_id, None)
            if entry is None:
                if not isinstance(pdu, ActiveTestResp):
                    log.warning("%s: response %r matches no request", self.peer, pdu)
                return
            future, timer = entry
            timer.cancel()
            if not future.done():
                future.set_result(pdu)
        elif isinstance(pdu, ActiveTest):
            self._answer(ActiveTestResp(sequence_id=pdu.sequence_id))
        elif isinstance(pdu, Terminate):
            self._answer(TerminateResp(sequence_id=pdu.sequence_id))
            self._close_reason = "the ISMG sent CMPP_TERMINATE"
            self._writer.flush()  # the answer must leave before the socket closes
            if self._transport is not None:
                self._transport.close()
        else:
            try:
                self._on_request(self, pdu)
            except Exception:  # a bug upstream must not kill the connection's reader
                log.exception("%s: handling %r failed", self.peer, pdu)

    def _answer(self, response: Pdu) -> None:
        try:
            self.send(response)
        except ChannelError:
            pass  # closing already: nothing to answer on

    # -- outgoing ----------------------------------------------------------------------
    def next_sequence(self) -> int:
        self._sequence = self._sequence % 0xFFFFFFFF + 1  # 1..2^32-1, then wraps
        return self._sequence

    def send(self, pdu: Pdu, *, sequence_id: int | None = None) -> None:
        """Queue ``pdu``; everything queued in one loop turn goes out in one write."""
        if self._transport is None or self._transport.is_closing():
            raise LinkDown(f"{self._error or f'CMPP link to {self.peer} is not open'} before sending")
        self._writer.write(encode(pdu, sequence_id=sequence_id))

    async def request(self, pdu: Pdu, *, windowed: bool = True, timeout: float | None = None) -> Pdu:
        """Send ``pdu`` with a fresh Sequence_Id and wait for its response."""
        if self._error is not None:
            raise LinkDown(f"{self._error} before sending")
        if windowed:
            await self.window.acquire()
        try:
            seq = self.next_sequence()
            future: asyncio.Future[Pdu] = self._loop.create_future()
            wait = self._options.response_timeout if timeout is None else timeout
            timer = self._loop.call_later(wait, self._expire, seq, type(pdu).__name__, wait)
            self._pending[seq] = (future, timer)
            try:
                self.send(pdu, sequence_id=seq)
            except BaseException:
                self._pending.pop(seq, None)
                timer.cancel()
                raise
            return await future
        finally:
            if windowed:
                self.window.release()

    def _expire(self, seq: int, name: str, wait: float) -> None:
        entry = self._pending.pop(seq, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                SubmitError(
                    f"no response from {self.peer} to {name} (Sequence_Id {seq}) within "
                    f"{wait:g} s: unresolved, the ISMG may or may not have it",
                    unresolved=True,
                )
            )

    # -- life cycle --------------------------------------------------------------------
    def start_keepalive(self) -> None:
        self._keepalive = self._loop.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        interval = self._options.active_test_interval
        while self._error is None:
            await asyncio.sleep(interval)
            if self._loop.time() - self._last_received < interval:
                continue
            if self._missed_tests >= self._options.max_missed_active_tests:
                self.abort(f"{self._missed_tests} CMPP_ACTIVE_TEST unanswered: peer is dead")
                return
            self._missed_tests += 1
            try:
                self.send(ActiveTest(), sequence_id=self.next_sequence())
            except ChannelError:
                return

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def is_open(self) -> bool:
        return self._error is None and self._transport is not None and not self._transport.is_closing()

    def abort(self, reason: str) -> None:
        log.warning("%s: closing the CMPP link: %s", self.peer, reason)
        self._close_reason = reason
        if self._transport is not None:
            self._transport.abort()

    async def terminate(self) -> None:
        """Say CMPP_TERMINATE, wait briefly for TERMINATE_RESP, close the socket."""
        if self.is_open:
            self._close_reason = "we sent CMPP_TERMINATE"
            try:
                await self.request(
                    Terminate(), windowed=False, timeout=self._options.terminate_timeout
                )
            except ChannelError as exc:
                log.info("%s: TERMINATE not acknowledged: %s", self.peer, exc)
        self._writer.flush()
        if self._transport is not None:
            self._transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), self._options.terminate_timeout)
        except TimeoutError:
            self.abort("the socket did not close after TERMINATE")

"""One SMPP 3.4 ESME session: a TCP connection, one bind, a window of requests.

Built on :class:`asyncio.Protocol` rather than streams because the per-PDU path is the
hot loop: PDUs are cut by the :class:`~.framer.Framer`, responses are matched to their
request by sequence_number (in any order, dict seq → Future), and writes made in the
same loop iteration leave in one ``transport.write`` (no drain per PDU; flow control only
above the transport's high-water mark).

The session answers enquire_link and unbind from the peer, nacks PDUs it cannot decode,
sends enquire_link when the link is idle and closes it when the peer stops answering. When
the connection is lost, every request in flight fails with :class:`SubmitError` marked
``unresolved`` (the SMSC may have accepted it). Reconnecting is the channel's job.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp import status as st
from jingxin.channels.smpp.framer import Framer
from jingxin.channels.throttle import TokenBucket
from jingxin.channels.writer import BatchedWriter
from jingxin.errors import ChannelError, ProtocolError, Retry

log = logging.getLogger(__name__)

_SUBMIT_SM_RESP = p.SubmitSmResp.command_id
_DELIVER_SM = p.DeliverSm.command_id


class BindMode(StrEnum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"


_BIND_CLASS = {
    BindMode.TRANSMITTER: p.BindTransmitter,
    BindMode.RECEIVER: p.BindReceiver,
    BindMode.TRANSCEIVER: p.BindTransceiver,
}


class SubmitError(ChannelError):
    """A request the SMSC refused (``status``) or that may or may not have arrived
    (``unresolved``: the link broke or the response never came)."""

    def __init__(self, message: str, *, status: int | None = None, unresolved: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unresolved = unresolved


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything one session needs; times in seconds."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "jingxin"
    password: str = ""
    system_type: str = ""
    mode: BindMode = BindMode.TRANSCEIVER
    window: int = 10
    tps: float = 0.0
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 5.0
    max_pdu_length: int = codec.DEFAULT_MAX_PDU_LENGTH
    throttle_retries: int = 5
    throttle_backoff: float = 0.1  # first back-off after ESME_RTHROTTLED / ESME_RMSGQFUL
    throttle_backoff_max: float = 2.0
    # Write as soon as this many PDUs are queued (0: the window). Smaller batches let
    # the SMSC start on the first PDUs while we encode the rest, instead of a lock-step
    # exchange of whole windows.
    write_batch: int = 0


# deliver_sm / data_sm → command_status of the resp, now; or an awaitable of it (None: OK),
# and the resp waits for it - a receipt is acknowledged once the worker has committed it.
# Or (awaitable, after): ``after()`` runs once an ESME_ROK resp is written on the open link
# (the SMSC will not deliver that PDU again; the durable MO inbox keeps count, see
# :mod:`jingxin.dispatch.mo_inbox`).
DeliverHandler = Callable[[Any], "int | Awaitable[int | None] | tuple[Awaitable[int | None], Callable[[], Any]]"]


class SmppSession(asyncio.Protocol):
    """Use :meth:`open` (connect + bind); then :meth:`submit_sm`, :meth:`request`, :meth:`unbind`."""

    def __init__(self, config: SessionConfig, *, on_deliver: DeliverHandler | None = None) -> None:
        self.config = config
        self.on_deliver = on_deliver
        self.bound = False
        self.closed_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[str] = self._loop.create_future()
        self._framer = Framer(max_length=config.max_pdu_length)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._deadlines: collections.deque[tuple[float, int]] = collections.deque()
        self._sequence = itertools.count(1)
        self._window = asyncio.Semaphore(config.window)
        self._bucket = TokenBucket(config.tps)
        self._writer = BatchedWriter(flush_at=config.write_batch or config.window)
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._paused_until = 0.0
        self._last_received = time.monotonic()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: SessionConfig, *, on_deliver: DeliverHandler | None = None) -> SmppSession:
        """Connect and bind. Raises ChannelError naming the host, port and bind status."""
        loop = asyncio.get_running_loop()
        session = cls(config, on_deliver=on_deliver)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: session, config.host, config.port),
                config.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise ChannelError(f"cannot connect to SMSC {config.host}:{config.port}: {exc}") from exc
        try:
            await session.bind()
        except BaseException:
            session.abort("bind failed")
            raise
        return session

    async def bind(self) -> None:
        cfg = self.config
        request = _BIND_CLASS[cfg.mode](
            system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type
        )
        try:
            response = await self.request(request)
        except ChannelError as exc:
            raise ChannelError(
                f"bind_{cfg.mode} as {cfg.system_id!r} to {cfg.host}:{cfg.port} failed: {exc}"
            ) from exc
        self.bound = True
        self._tasks.append(self._loop.create_task(self._keepalive()))
        log.info("bound %s to %s:%s as %s (SMSC %r)", cfg.mode, cfg.host, cfg.port,
                 cfg.system_id, response.system_id)  # fmt: skip

    async def unbind(self) -> None:
        """Unbind politely (bounded wait), then close the connection."""
        if self._transport is not None and not self._transport.is_closing() and self.bound:
            # Let the submits in flight be answered first (bounded), then say goodbye.
            deadline = time.monotonic() + min(self.config.response_timeout, 2.0)
            while self._pending and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            try:
                await asyncio.wait_for(self.request(p.Unbind()), min(self.config.response_timeout, 2.0))
            except (ChannelError, TimeoutError):
                pass
        self.abort("unbound")
        await self.wait_closed(timeout=2.0)

    def abort(self, reason: str) -> None:
        """Close now; in-flight requests fail as unresolved."""
        if self.closed_reason is None:
            self.closed_reason = reason
        if self._transport is not None:
            self._writer.flush()
            self._transport.close()
        else:
            self._fail_all(reason)
            if not self._closed.done():
                self._closed.set_result(reason)

    async def wait_closed(self, timeout: float | None = None) -> str:
        """Wait until the connection is gone; return why."""
        return await asyncio.wait_for(asyncio.shield(self._closed), timeout)

    @property
    def is_open(self) -> bool:
        return not self._closed.done()

    # ------------------------------------------------------------------ requests

    def next_sequence(self) -> int:
        seq = next(self._sequence)
        if seq > 0x7FFFFFFF:  # wrap back to 1 (PROTOCOLS.md §1.2)
            self._sequence = itertools.count(2)
            seq = 1
        return seq

    async def request(self, message: p.Pdu) -> Any:
        """Send any request PDU and return its response (raises SubmitError on a bad status)."""
        if not self.is_open:  # nothing was sent: safe to try again on the next link
            raise Retry(f"SMPP link closed: {self.closed_reason}", delay=1.0)
        seq = message.sequence_number = self.next_sequence()
        try:
            data = codec.encode(message)
        except ProtocolError as exc:
            raise SubmitError(f"cannot encode {message.command_name}: {exc}") from exc
        future = self._expect(seq)
        self.send(data)
        response = await future
        if type(response) is tuple:  # a submit_sm_resp read by the fast path
            response = p.SubmitSmResp(seq, response[0], response[1])
        if response.command_status != st.ESME_ROK or type(response) is p.GenericNack:
            status = response.command_status or st.ESME_RUNKNOWNERR
            raise _status_error(message.command_name, status)
        return response

    async def submit_sm(self, **fields: Any) -> str:
        """Submit one submit_sm; return its message_id.

        Waits for the TPS bucket and a window slot; backs off and resubmits on
        ESME_RTHROTTLED / ESME_RMSGQFUL (at most ``throttle_retries`` times, then
        :class:`~jingxin.errors.Retry`); other statuses raise :class:`SubmitError`.
        """
        cfg = self.config
        backoff = cfg.throttle_backoff
        for _attempt in range(cfg.throttle_retries + 1):
            if self._bucket.rate:
                await self._bucket.take()
            status, message_id = await self._submit_once(fields)
            if status == st.ESME_ROK:
                return message_id
            klass = st.retry_class(status)
            if klass is not st.RetryClass.THROTTLED:
                raise _status_error("submit_sm", status)
            # Everyone on this bind waits, not just this submit: the SMSC asked us to slow down.
            self._paused_until = max(self._paused_until, time.monotonic() + backoff)
            backoff = min(backoff * 2, cfg.throttle_backoff_max)
        error = Retry(f"submit_sm still {st.describe(status)} after {cfg.throttle_retries} retries",
                      delay=backoff)  # fmt: skip
        error.status = status  # type: ignore[attr-defined]
        raise error

    async def _submit_once(self, fields: dict[str, Any]) -> tuple[int, str]:
        async with self._window:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if not self.is_open:  # nothing was sent: safe to try again on the next link
                raise Retry(f"SMPP link closed: {self.closed_reason}", delay=1.0)
            message = p.SubmitSm(self.next_sequence(), **fields)
            try:
                data = codec.encode_sm(p.SubmitSm.command_id, message)
            except ProtocolError as exc:  # a field that does not fit: permanent, never sent
                raise SubmitError(f"cannot encode submit_sm: {exc}") from exc
            future = self._expect(message.sequence_number)
            self.send(data)
            if not self._can_write.is_set():
                await self._can_write.wait()
            response = await future
        if type(response) is tuple:  # the fast path: (command_status, message_id)
            return response
        if type(response) is p.GenericNack:
            return response.command_status or st.ESME_RUNKNOWNERR, ""
        return response.command_status, response.message_id

    def _expect(self, seq: int) -> asyncio.Future:
        future = self._loop.create_future()
        self._pending[seq] = future
        self._deadlines.append((time.monotonic() + self.config.response_timeout, seq))
        return future

    # ------------------------------------------------------------------ writing

    def send(self, data: bytes) -> None:
        """Queue PDU bytes (see :class:`jingxin.channels.writer.BatchedWriter`)."""
        self._writer.write(data)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ------------------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._writer.attach(self._transport)
        self._tasks.append(self._loop.create_task(self._sweep_deadlines()))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.closed_reason or (f"connection lost: {exc}" if exc else "peer closed the connection")
        self.closed_reason = reason
        self.bound = False
        self._fail_all(reason)
        for task in self._tasks:
            task.cancel()
        if not self._closed.done():
            self._closed.set_result(reason)
        self._can_write.set()

    def _fail_all(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(SubmitError(f"unresolved: {reason}", unresolved=True))

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        try:
            frames = self._framer.feed(data)
        except codec.PduError as exc:
            log.warning("closing SMPP link to %s:%s: %s", self.config.host, self.config.port, exc)
            self.send(codec.HEADER.pack(16, p.GenericNack.command_id, exc.status, 0))
            self.abort(f"bad PDU stream: {exc}")
            return
        pending = self._pending
        for frame in frames:
            # Fast path: submit_sm_resp is most of the traffic.
            if int.from_bytes(frame[4:8], "big") == _SUBMIT_SM_RESP:
                seq = int.from_bytes(frame[12:16], "big")
                future = pending.pop(seq, None)
                if future is not None and not future.done():
                    fast = codec.read_message_id_resp(frame)
                    try:
                        future.set_result(fast if fast is not None else codec.decode(frame))
                    except ProtocolError as exc:
                        future.set_exception(SubmitError(f"unresolved: {exc}", unresolved=True))
                continue
            self._handle_frame(frame)

    def _handle_frame(self, frame: bytes) -> None:
        try:
            message = codec.decode(frame, max_length=self.config.max_pdu_length)
        except codec.PduError as exc:
            self._bad_pdu(exc)
            return
        cls = type(message)
        if cls.is_response:
            future = self._pending.pop(message.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        seq = message.sequence_number
        if cls is p.DeliverSm or cls is p.DataSm:
            self._deliver(message)
        elif cls is p.EnquireLink:
            self.send(codec.HEADER.pack(16, p.EnquireLinkResp.command_id, 0, seq))
        elif cls is p.Unbind:
            self.send(codec.HEADER.pack(16, p.UnbindResp.command_id, 0, seq))
            self.abort("the SMSC unbound")
        elif cls is p.AlertNotification or cls is p.Outbind:
            log.info("ignoring %s from the SMSC", cls.command_name)
        else:  # a request an SMSC must not send to an ESME
            self.send(codec.HEADER.pack(16, p.GenericNack.command_id, st.ESME_RINVBNDSTS, seq))

    def _bad_pdu(self, exc: codec.PduError) -> None:
        log.warning("SMPP %s:%s sent a bad PDU: %s", self.config.host, self.config.port, exc)
        if exc.command_id & p.RESPONSE_BIT:
            future = self._pending.pop(exc.sequence_number, None)
            if future is not None and not future.done():
                future.set_exception(SubmitError(f"unresolved: {exc}", unresolved=True))
            return
        self.send(codec.HEADER.pack(16, p.GenericNack.command_id, exc.status, exc.sequence_number))

    def _deliver(self, message: Any) -> None:
        status: Any = st.ESME_ROK
        if self.on_deliver is not None:
            try:
                status = self.on_deliver(message)
            except Exception:  # our handler's bug must not kill the link; ask for a resend
                log.exception("deliver handler failed")
                status = st.ESME_RX_T_APPN
        resp = p.DeliverSmResp if type(message) is p.DeliverSm else p.DataSmResp
        if isinstance(status, int):
            self._answer_deliver(resp.command_id, message.sequence_number, status)
            return
        after = None
        if type(status) is tuple:
            status, after = status
        # Answer when the handler is done (e.g. the receipt committed), without holding up
        # this read loop: later PDUs keep being read and handled meanwhile.
        asyncio.ensure_future(status).add_done_callback(
            functools.partial(self._deliver_done, resp.command_id, message.sequence_number, after)
        )

    def _deliver_done(self, command_id: int, seq: int, after: Callable[[], Any] | None,
                      done: asyncio.Future) -> None:  # fmt: skip
        if done.cancelled() or done.exception() is not None:
            log.error("deliver handler failed (%s); asking the SMSC to resend",
                      "cancelled" if done.cancelled() else done.exception())  # fmt: skip
            status = st.ESME_RX_T_APPN
        else:
            status = done.result() or st.ESME_ROK
        if self._answer_deliver(command_id, seq, status) and after is not None and status == st.ESME_ROK:
            try:
                after()
            except Exception:  # bookkeeping only: the PDU is acknowledged either way
                log.exception("after-acknowledgement hook failed")

    def _answer_deliver(self, command_id: int, seq: int, status: int) -> bool:
        """Write the resp; False when the link is already gone (the writer would drop it,
        and the SMSC re-delivers the PDU on the next bind)."""
        # message_id is unused (NULL) in deliver_sm_resp: the 17-octet PDU, written directly.
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        self.send(codec.HEADER.pack(17, command_id, status, seq) + b"\0")
        return True

    # ------------------------------------------------------------------ timers

    async def _keepalive(self) -> None:
        interval = self.config.enquire_link_interval
        while self.is_open:
            await asyncio.sleep(interval / 4)
            if time.monotonic() - self._last_received < interval:
                continue
            try:
                await self.request(p.EnquireLink())
            except ChannelError as exc:
                self.abort(f"dead peer: enquire_link not answered ({exc})")
                return

    async def _sweep_deadlines(self) -> None:
        """Fail requests whose response is overdue; deadlines are in send order."""
        step = min(1.0, self.config.response_timeout / 4)
        deadlines = self._deadlines
        while self.is_open:
            await asyncio.sleep(step)
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, seq = deadlines.popleft()
                future = self._pending.pop(seq, None)
                if future is not None and not future.done():
                    future.set_exception(SubmitError(
                        f"unresolved: no response within {self.config.response_timeout}s",
                        unresolved=True,
                    ))  # fmt: skip


def _status_error(command: str, status: int) -> ChannelError:
    klass = st.retry_class(status)
    message = f"{command} refused: {st.describe(status)}"
    if klass in (st.RetryClass.TEMPORARY, st.RetryClass.THROTTLED):
        error: ChannelError = Retry(message, delay=1.0)
        error.status = status  # type: ignore[attr-defined]
        return error
    return SubmitError(message, status=status)

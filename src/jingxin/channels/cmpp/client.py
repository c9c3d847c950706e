"""CmppChannel: the :class:`~jingxin.channels.base.Channel` over CMPP 2.0 (SP → ISMG).

``start`` opens a :class:`~.link.Link` and says CMPP_CONNECT (version 0x20, the
AuthenticatorSource of :mod:`.auth`); a refusal raises :class:`ChannelError` naming the
Status. Afterwards a supervisor re-connects with exponential back-off if the link drops.

``submit`` sends one CMPP_SUBMIT per part (:mod:`.outbound`) through the window and
returns one Msg_Id per part, as **decimal text** (:mod:`.msgid`) — the same text a status
report carries in ``DeliveryReceipt.message_id``. Result 8 (flow control) pauses the whole
channel for a back-off and resubmits, at most ``flow_control_retries`` times, then raises
:class:`Retry`; any other non-zero Result raises ChannelError naming the code. When the
link drops, submits in flight fail with an "unresolved" ChannelError (the ISMG may or may
not have them).

Every DELIVER is acknowledged with DELIVER_RESP (its Msg_Id, Result 0) once its handler
has run — reports and MO alike, even ones that cannot be decoded (the ISMG would only
resend them). With ``on_mo_part`` (the worker's durable inbox) each MO DELIVER is handed
over raw as one :class:`~jingxin.domain.sms.MoPart` (UDH removed, not reassembled, not
decoded) and acknowledged only when the future its handler returns resolves, i.e. after
the part is committed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jingxin.channels.base import MoHandler, MoPartHandler, ReceiptHandler
from jingxin.channels.cmpp import auth, inbound, msgid, outbound
from jingxin.channels.cmpp.concatenation import Reassembler, split_udh
from jingxin.channels.cmpp.fields import udhi_set
from jingxin.channels.cmpp.link import Link, LinkDown, LinkOptions
from jingxin.channels.cmpp.pdu import (
    Connect,
    ConnectResp,
    Deliver,
    DeliverResp,
    Pdu,
    Submit,
    SubmitResp,
)
from jingxin.channels.cmpp.results import (
    RESULT_FLOW_CONTROL,
    SubmitError,
    connect_status_text,
    submit_result_text,
)
from jingxin.channels.throttle import TokenBucket
from jingxin.domain.sms import MobileOriginated, OutboundSms, SubmitResult
from jingxin.errors import ChannelError, ConfigError, ProtocolError, Retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CmppOptions:
    """Tuning that :class:`~jingxin.config.ChannelSettings` does not carry."""

    link: LinkOptions = field(default_factory=LinkOptions)
    service_id: str = ""
    sp_id_padding: str = "none"  # "nul": NUL-pad a short SP_Id in the CONNECT authenticator
    fee_user_type: int = 2
    fee_type: str = "01"
    fee_code: str = "000000"
    tps: float = 0.0  # our own submit pacing; 0 = as fast as the window allows
    flow_control_retries: int = 5
    flow_control_backoff: float = 0.05  # first pause after Result 8; doubles, capped at 2 s
    reconnect: bool = True
    reconnect_max: float = 30.0
    mo_timeout: float = 600.0  # how long an incomplete long MO waits for its parts


class CmppChannel:
    """An ISMG link over CMPP 2.0."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        sp_id: str,
        secret: str,
        source_addr: str,
        options: CmppOptions | None = None,
        on_receipt: ReceiptHandler | None = None,
        on_mo: MoHandler | None = None,
        on_mo_part: MoPartHandler | None = None,
        clock: Callable[[], datetime] = auth.beijing_now,
    ) -> None:
        if not sp_id or len(sp_id) > 6 or not sp_id.isascii():
            raise ConfigError(
                f"channel {name}: CMPP system_id (SP_Id) {sp_id!r} must be 1–6 ASCII characters"
            )
        self.name, self.host, self.port = name, host, port
        self.sp_id, self._secret = sp_id, secret
        self.options = options or CmppOptions()
        self.on_receipt, self.on_mo, self.on_mo_part = on_receipt, on_mo, on_mo_part
        self._clock = clock
        self._defaults = outbound.SubmitDefaults(
            sp_id=sp_id, src_id=source_addr, service_id=self.options.service_id,
            fee_user_type=self.options.fee_user_type, fee_type=self.options.fee_type,
            fee_code=self.options.fee_code,
        )  # fmt: skip
        self._link: Link | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._references = itertools.count(1)
        self._paused_until = 0.0
        self._pacer = TokenBucket(self.options.tps)
        self._reassembler = Reassembler(ttl=self.options.mo_timeout)

    # -- Channel -----------------------------------------------------------------------
    async def start(self) -> None:
        """CONNECT once (a refusal raises ChannelError); then keep the link up."""
        self._closing = False
        self._link = await self._connect()
        self._ready.set()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def submit(self, message: OutboundSms) -> SubmitResult:
        await self._open_link()
        try:
            pdus = outbound.submits(
                message, defaults=self._defaults, reference=next(self._references) & 0xFF
            )
        except ProtocolError as exc:
            raise ChannelError(f"{self.name}: cannot build CMPP_SUBMIT: {exc}") from exc
        if len(pdus) == 1:
            ids = [await self._submit_part(pdus[0])]
        else:
            ids = await self._submit_parts(pdus)
        return SubmitResult(message.reference, tuple(ids), len(pdus), datetime.now(UTC))

    async def close(self) -> None:
        """Let in-flight submits be answered (up to the response timeout), then TERMINATE."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        link = self._link
        if link is not None:
            deadline = asyncio.get_running_loop().time() + self.options.link.response_timeout
            while link.in_flight and link.is_open and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            await link.terminate()
        if self._callbacks:
            await asyncio.wait(self._callbacks, timeout=2.0)

    @property
    def link(self) -> Link | None:
        return self._link

    # -- submits -----------------------------------------------------------------------
    async def _submit_parts(self, pdus: list[Submit]) -> list[str]:
        outcomes = await asyncio.gather(
            *(self._submit_part(p) for p in pdus), return_exceptions=True
        )
        failures = [(i, o) for i, o in enumerate(outcomes, 1) if isinstance(o, BaseException)]
        if not failures:
            return [str(o) for o in outcomes]
        number, first = failures[0]
        sent = [f"{i}:{o}" for i, o in enumerate(outcomes, 1) if not isinstance(o, BaseException)]
        detail = (
            f"{self.name}: {len(failures)} of {len(pdus)} parts failed (first: part {number}: "
            f"{first}); parts accepted: {', '.join(sent) or 'none'}"
        )
        if isinstance(first, Retry) and len(failures) == len(pdus):
            raise Retry(detail, delay=first.delay) from first
        unresolved = any(getattr(f, "unresolved", False) for _, f in failures)
        raise SubmitError(detail, status=getattr(first, "status", None), unresolved=unresolved) from first

    async def _submit_part(self, pdu: Submit) -> str:
        loop = asyncio.get_running_loop()
        backoff = self.options.flow_control_backoff
        throttled = relinked = 0
        while True:
            wait = max(self._paused_until - loop.time(), self._pacer.delay())
            if wait > 0:
                await asyncio.sleep(wait)
            link = await self._open_link()
            try:
                response = await link.request(pdu)
            except LinkDown:  # never written: safe to send on the next link
                relinked += 1
                if relinked > 3:
                    raise
                continue
            except ProtocolError as exc:  # a field that does not fit: nothing was sent
                raise SubmitError(f"{self.name}: cannot encode CMPP_SUBMIT: {exc}") from exc
            if not isinstance(response, SubmitResp):
                raise ChannelError(f"{self.name}: CMPP_SUBMIT answered by {response!r}")
            if response.result == 0:
                return msgid.to_text(response.msg_id)
            if response.result != RESULT_FLOW_CONTROL:
                raise SubmitError(
                    f"{self.name}: CMPP_SUBMIT to {pdu.dest_terminal_ids[0]} part "
                    f"{pdu.pk_number}/{pdu.pk_total} refused: Result {response.result} "
                    f"({submit_result_text(response.result)})",
                    status=response.result,
                )
            throttled += 1
            if throttled > self.options.flow_control_retries:
                raise Retry(
                    f"{self.name}: CMPP_SUBMIT to {pdu.dest_terminal_ids[0]} still flow-controlled "
                    f"(Result 8) after {self.options.flow_control_retries} resubmits",
                    delay=backoff,
                )
            # Flow control: everyone on this channel slows down, not only this part.
            self._paused_until = max(self._paused_until, loop.time() + backoff)
            backoff = min(backoff * 2, 2.0)

    # -- connection --------------------------------------------------------------------
    async def _connect(self) -> Link:
        loop = asyncio.get_running_loop()
        peer = f"{self.host}:{self.port}"
        timeout = self.options.link.connect_timeout
        try:
            _transport, link = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Link(peer=peer, options=self.options.link, on_request=self._on_request),
                    self.host, self.port,
                ),
                timeout,
            )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            raise ChannelError(f"{self.name}: cannot reach the ISMG at {peer}: {exc or 'timeout'}") from exc
        stamp = auth.timestamp(self._clock())
        source_auth = auth.authenticator_source(source_addr=self.sp_id, secret=self._secret,
                                                timestamp=stamp, padding=self.options.sp_id_padding)
        try:
            response = await link.request(
                Connect(self.sp_id, source_auth, stamp), windowed=False, timeout=timeout
            )
        except ChannelError as exc:
            link.abort("no CONNECT_RESP")
            raise ChannelError(f"{self.name}: CMPP_CONNECT to {peer} failed: {exc}") from exc
        if not isinstance(response, ConnectResp) or response.status != 0:
            link.abort("CONNECT refused")
            status = getattr(response, "status", None)
            meaning = connect_status_text(status) if status is not None else repr(response)
            raise ChannelError(
                f"{self.name}: CMPP_CONNECT to {peer} as SP {self.sp_id!r} refused: "
                f"Status {status} ({meaning})"
            )
        if not auth.ismg_matches(
            authenticator=response.authenticator, status=0,
            authenticator_source=source_auth, secret=self._secret,
        ):  # fmt: skip
            log.warning("%s: AuthenticatorISMG from %s does not verify (accepted anyway)", self.name, peer)
        link.start_keepalive()
        return link

    async def _open_link(self) -> Link:
        """The current link, waiting (up to connect_timeout) while it is re-connecting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.link.connect_timeout
        while True:
            link = self._link
            if link is not None and link.is_open:
                return link
            if self._closing or self._supervisor is None:
                raise ChannelError(f"{self.name}: CMPP channel not started, or closed")
            if self._supervisor.done():
                raise ChannelError(f"{self.name}: CMPP link closed and re-connecting is off")
            self._ready.clear()  # set again by the supervisor once a new link is up
            try:
                await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise Retry(f"{self.name}: CMPP link is down (re-connecting)", delay=1.0) from None

    async def _supervise(self) -> None:
        delay = 0.25
        while not self._closing:
            if self._link is not None:
                await asyncio.shield(self._link.closed)
                self._ready.clear()
                if self._closing or not self.options.reconnect:
                    return
                log.warning("%s: CMPP link lost; re-connecting", self.name)
            try:
                self._link = await self._connect()
                self._ready.set()
                delay = 0.25
            except ChannelError as exc:
                self._link = None
                log.warning("%s: re-connect failed (%s); next try in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_max)

    # -- inbound -----------------------------------------------------------------------
    def _on_request(self, link: Link, pdu: Pdu) -> None:
        if not isinstance(pdu, Deliver):
            log.warning("%s: ignoring unexpected request %r from the ISMG", self.name, pdu)
            return
        ack = DeliverResp(pdu.msg_id, 0, pdu.sequence_id)
        try:
            handler, value = self._inbound(pdu)
        except ProtocolError as exc:
            log.error("%s: undecodable DELIVER %r: %s (acknowledged)", self.name, pdu, exc)
            handler, value = None, None
        self._call(handler, value, lambda: link.is_open and link.send(ack))

    def _inbound(self, pdu: Deliver) -> tuple[Any, Any]:
        now = datetime.now(UTC)
        if pdu.registered_delivery == 1:
            return self.on_receipt, inbound.receipt(pdu, received_at=now)
        if self.on_mo_part is not None:
            return self.on_mo_part, inbound.mo_part(pdu, received_at=now, channel=self.name)
        payload, parts = pdu.msg_content, 1
        if udhi_set(pdu.tp_udhi):
            concat, payload = split_udh(pdu.msg_content)
            if concat is not None:
                pieces = self._reassembler.add((pdu.src_terminal_id, pdu.dest_id), concat, payload)
                if pieces is None:
                    return None, None
                payload, parts = b"".join(pieces), len(pieces)
        text, binary = inbound.decode_text(payload, pdu.msg_fmt)
        extra = {
            "channel": self.name, "msg_id": msgid.to_text(pdu.msg_id), "parts": str(parts),
            "service_id": pdu.service_id, "msg_fmt": str(pdu.msg_fmt),
        }  # fmt: skip
        if binary:
            extra["binary"] = "hex"
        return self.on_mo, MobileOriginated(pdu.src_terminal_id, pdu.dest_id, text, now, extra)

    def _call(self, handler: Any, value: Any, then: Callable[[], object]) -> None:
        try:
            result = handler(value) if handler is not None else None
        except Exception:
            log.exception("%s: handler %r failed", self.name, handler)
            result = None
        if not inspect.isawaitable(result):
            then()
        elif asyncio.isfuture(result):
            # The worker's receipt / MO inbox: one future per transaction, resolved once the
            # receipt or MO part is committed - only then is it acknowledged (no task each).
            result.add_done_callback(functools.partial(_acked, then, self.name))
        else:
            # A receipt or MO part whose handler failed is not acknowledged: sent again.
            durable = handler is self.on_receipt or handler is self.on_mo_part
            task = asyncio.ensure_future(
                _after(result, then, self.name, ack_on_error=not durable)
            )
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)


def _acked(then: Callable[[], object], name: str, done: asyncio.Future) -> None:
    if done.cancelled() or done.exception() is not None:
        log.error("%s: DELIVER not committed (%s); the ISMG will send it again", name,
                  "cancelled" if done.cancelled() else done.exception())  # fmt: skip
        return
    then()


async def _after(
    awaitable: Awaitable[Any], then: Callable[[], object], name: str, *, ack_on_error: bool
) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s: async handler failed", name)
        if not ack_on_error:
            return
    then()


def from_settings(settings: Any, **kwargs: Any) -> CmppChannel:
    """A CmppChannel from a :class:`~jingxin.config.ChannelSettings` (protocol 'cmpp')."""
    options = kwargs.pop("options", None) or CmppOptions(
        link=LinkOptions(window=settings.window),
        tps=settings.tps,
        service_id=getattr(settings, "service_id", ""),
        sp_id_padding=getattr(settings, "sp_id_padding", "none"),
    )
    return CmppChannel(
        name=settings.name, host=settings.host, port=settings.port, sp_id=settings.system_id,
        secret=settings.password, source_addr=settings.source_addr, options=options, **kwargs,
    )  # fmt: skip

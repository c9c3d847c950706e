"""SmppChannel: the :class:`~jingxin.channels.base.Channel` over SMPP 3.4.

It keeps one bound :class:`~.session.SmppSession` alive (re-connecting and re-binding
with exponential back-off when the link drops), turns an OutboundSms into its submit_sm
parts, and turns deliver_sm into DeliveryReceipt (receipt bit set) or MobileOriginated
(concatenated parts reassembled, partial ones handed over after ``mo_timeout``).

With ``on_mo_part`` (the worker's durable inbox) every MO deliver_sm is handed over raw,
one :class:`~jingxin.domain.sms.MoPart` per PDU, and its deliver_sm_resp waits for the
future the handler returns (resolved once the part is committed): nothing is reassembled
or decoded here, and a part the worker dies holding is delivered again by the SMSC. An
SMPP MO carries no id the SMSC keeps across deliveries, so once its deliver_sm_resp is
written on the open link the part is reported to the handler's ``acked`` (when it has
one): a PDU the same as an acknowledged one is the subscriber's repeat, not a redelivery.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from jingxin.channels.base import MoHandler, MoPartHandler, ReceiptHandler
from jingxin.channels.smpp import receipt, short_message
from jingxin.channels.smpp.concat import Reassembled, Reassembler, concat_info
from jingxin.channels.smpp.session import SessionConfig, SmppSession
from jingxin.channels.smpp.status import ESME_ROK
from jingxin.domain.sms import MobileOriginated, MoPart, OutboundSms, SubmitResult
from jingxin.errors import ChannelError, Retry

log = logging.getLogger(__name__)


class SmppChannel:
    """An SMSC link over SMPP. ``start`` binds; ``submit`` sends; ``close`` unbinds."""

    def __init__(
        self,
        *,
        name: str,
        config: SessionConfig,
        source_addr: str = "",
        long_messages: short_message.LongMessages = "udh",
        ref16: bool = False,
        on_receipt: ReceiptHandler | None = None,
        on_mo: MoHandler | None = None,
        on_mo_part: MoPartHandler | None = None,
        reconnect: bool = True,
        reconnect_max: float = 30.0,
        mo_timeout: float = 60.0,
        receipt_id_format: receipt.IdFormat = "as-is",
    ) -> None:
        self.name = name
        self.config = config
        self.source_addr = source_addr
        self.long_messages = long_messages
        self.ref16 = ref16
        self.on_receipt = on_receipt
        self.on_mo = on_mo
        self.on_mo_part = on_mo_part
        # The durable inbox tells a redelivery from a subscriber's repeat by acknowledgement
        # (jingxin.dispatch.inbox.MoInbox.handler); a plain function handler has no use for it.
        self._mo_acked = getattr(on_mo_part, "acked", None)
        self.reconnect = reconnect
        self.reconnect_max = reconnect_max
        self.receipt_id_format = receipt_id_format
        self._session: SmppSession | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task | None = None
        self._callbacks: set[asyncio.Task] = set()
        self._refs = itertools.count(1)
        self._reassembler = Reassembler(timeout=mo_timeout)

    # ------------------------------------------------------------------ Channel

    async def start(self) -> None:
        """Connect and bind once (errors raise); then keep the link up in the background."""
        self._session = await SmppSession.open(self.config, on_deliver=self._on_deliver)
        self._ready.set()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def submit(self, message: OutboundSms) -> SubmitResult:
        session = await self._bound_session()
        ref = next(self._refs) & (0xFFFF if self.ref16 else 0xFF)
        try:
            parts = short_message.parts(
                message.text, long_messages=self.long_messages, ref=ref, ref16=self.ref16
            )
        except ValueError as exc:
            raise ChannelError(f"{self.name}: cannot encode message {message.reference}: {exc}") from exc
        common = self._common_fields(message)
        ids: list[str] = []
        try:
            for part in parts:
                ids.append(await session.submit_sm(
                    short_message=part.short_message,
                    esm_class=part.esm_class,
                    data_coding=part.data_coding,
                    tlvs=part.tlvs,
                    **common,
                ))  # fmt: skip
        except ChannelError as exc:
            # The parts already accepted stay accepted: say which, so no one resends them blindly.
            exc.message_ids = tuple(ids)  # type: ignore[attr-defined]
            exc.parts = len(parts)  # type: ignore[attr-defined]
            raise
        return SubmitResult(message.reference, tuple(ids), len(parts), datetime.now(UTC))

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._session is not None:
            await self._session.unbind()
        if self._callbacks:
            await asyncio.wait(self._callbacks, timeout=2.0)

    # ------------------------------------------------------------------ helpers

    @property
    def session(self) -> SmppSession | None:
        return self._session

    def _common_fields(self, message: OutboundSms) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "source_addr": message.source_addr or self.source_addr,
            "destination_addr": message.destination,
            "registered_delivery": 1 if message.registered_delivery else 0,
            "priority_flag": min(max(message.priority, 0), 3),
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
        }
        if message.validity_seconds:
            fields["validity_period"] = short_message.relative_validity(message.validity_seconds)
        return fields

    async def _bound_session(self) -> SmppSession:
        session = self._session
        if session is not None and session.bound:
            return session
        if self._closing or self._supervisor is None:
            raise ChannelError(f"{self.name}: channel not started or closed")
        try:
            await asyncio.wait_for(self._ready.wait(), self.config.connect_timeout)
        except TimeoutError:
            raise Retry(f"{self.name}: SMPP link is down (re-binding)", delay=1.0) from None
        assert self._session is not None
        return self._session

    async def _supervise(self) -> None:
        """Re-connect and re-bind after the link drops, with exponential back-off."""
        delay = 0.25
        while not self._closing:
            session = self._session
            if session is not None:
                housekeeping = asyncio.create_task(self._expire_mo_loop())
                try:
                    reason = await session.wait_closed()
                finally:
                    housekeeping.cancel()
                self._ready.clear()
                if self._closing or not self.reconnect:
                    return
                log.warning("%s: SMPP link lost (%s); re-binding", self.name, reason)
            try:
                self._session = await SmppSession.open(self.config, on_deliver=self._on_deliver)
                self._ready.set()
                delay = 0.25
            except ChannelError as exc:
                self._session = None
                log.warning("%s: re-bind failed (%s); next try in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)

    async def _expire_mo_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._reassembler.timeout / 2))
            for group in self._reassembler.expire():
                self._emit_mo(group)

    # ------------------------------------------------------------------ inbound

    def _on_deliver(self, pdu: Any) -> Any:
        now = datetime.now(UTC)
        if receipt.is_receipt(pdu.esm_class):
            if self.on_receipt is not None:
                result = receipt.from_deliver(pdu, received_at=now, id_format=self.receipt_id_format)
                acked = self.on_receipt(result)
                # An awaitable (the worker's inbox): deliver_sm_resp waits until the receipt
                # is committed. None (e.g. `jingxin send` printing it): acknowledge now.
                if acked is not None and inspect.isawaitable(acked):
                    return acked
            return ESME_ROK
        body = getattr(pdu, "short_message", b"") or pdu.tlvs.get("message_payload", b"")
        info, user_data = concat_info(pdu.esm_class, body, pdu.tlvs)
        if self.on_mo_part is not None:
            return self._hand_over(pdu, info, user_data, now)
        meta = (pdu.source_addr, pdu.destination_addr, pdu.data_coding, now)
        if info is None or info.total == 1:
            self._emit_mo(Reassembled((), user_data, 1, 1, meta))
            return ESME_ROK
        whole = self._reassembler.add((pdu.source_addr, pdu.destination_addr), info, user_data, meta)
        if whole is not None:
            self._emit_mo(whole)
        return ESME_ROK

    def _hand_over(self, pdu: Any, info: Any, user_data: bytes, now: datetime) -> Any:
        """The durable path: one MoPart per PDU; acknowledged when the handler's future is."""
        assert self.on_mo_part is not None
        smsc_id = pdu.tlvs.get("receipted_message_id")  # some SMSCs id their MO this way
        part = MoPart(
            protocol="smpp", source=pdu.source_addr, destination=pdu.destination_addr,
            coding=pdu.data_coding, payload=user_data, received_at=now,
            ref=info.ref if info else None, total=info.total if info else None,
            seq=info.seq if info else None,
            smsc_id=smsc_id.decode("latin-1") if isinstance(smsc_id, bytes) else smsc_id or None,
            extra={"channel": self.name},
        )  # fmt: skip
        acked = self.on_mo_part(part)  # raising: the session answers RX_T_APPN (resend)
        if acked is not None and inspect.isawaitable(acked):
            if self._mo_acked is not None and part.smsc_id is None:
                # the session calls it once the ESME_ROK resp is written on the open link
                return acked, functools.partial(self._mo_acked, part)
            return acked
        return ESME_ROK

    def _emit_mo(self, group: Reassembled) -> None:
        if self.on_mo is None:
            return
        source, destination, coding, received_at = group.meta
        extra = {"channel": self.name, "parts": str(group.total)}
        if not group.complete:
            extra["incomplete"] = f"{group.received}/{group.total}"
        text = short_message.decode(group.payload, coding)
        self._call(self.on_mo, MobileOriginated(source, destination, text, received_at, extra))

    def _call(self, handler: Any, value: Any) -> None:
        try:
            result = handler(value)
        except Exception:
            log.exception("%s: handler %r failed", self.name, handler)
            return
        if result is not None and inspect.isawaitable(result):
            task = asyncio.ensure_future(_quietly(result, self.name))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)


async def _quietly(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s: async handler failed", name)

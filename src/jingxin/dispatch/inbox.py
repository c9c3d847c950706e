"""Where channels drop receipts and MO parts until the worker's flusher writes them - and
learn when.

Channels call the handler from their event loop; the flusher takes the whole list at once.
Both run on the same loop thread, so swapping the list is enough - no lock.

The handler returns a future that is resolved once the item's transaction has committed;
the channel acknowledges the PDU to the SMSC (deliver_sm_resp, CMPP_DELIVER_RESP) only
then. A worker killed between the two leaves the PDU unacknowledged, and the SMSC delivers
it again after the next bind: applying a receipt twice changes nothing (see
:mod:`jingxin.dispatch.receipts`), and an MO part delivered twice is stored once (its
unique dedup key, :mod:`jingxin.dispatch.mo_inbox`). All items taken in one flush share one
future: one allocation per transaction, not per PDU.

One class serves both: ``ReceiptInbox`` for receipts, ``MoInbox`` for MO parts (the latter
also wakes the flusher at once, so a reply is not held back a whole flush interval). An
MO part the channel has acknowledged (an SMPP one: its deliver_sm_resp written) comes back
through the handler's ``acked``: the next flush records it, so that a later PDU the same as
it is stored as the subscriber's repeat, not taken for its redelivery
(:mod:`jingxin.dispatch.mo_inbox`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from jingxin.domain.sms import DeliveryReceipt, MoPart

T = TypeVar("T")


class Inbox(Generic[T]):
    """Where channels drop items until the flusher writes them (build channels with
    ``on_receipt=inbox.handler(name)`` or ``on_mo_part=...``)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, T]] = []
        self._committed: asyncio.Future[None] | None = None
        self.arrived: asyncio.Event | None = None  # set on each item when the flusher asks

    def handler(self, channel: str) -> Callable[[T], asyncio.Future[None]]:
        def on_item(item: T) -> asyncio.Future[None]:
            self.items.append((channel, item))
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            if self.arrived is not None:
                self.arrived.set()
            return self._committed

        return on_item

    def take(self) -> tuple[list[tuple[str, T]], asyncio.Future[None] | None]:
        """Everything received so far, and the future its senders wait on: pass it to
        :meth:`committed` after the transaction commits, or to :meth:`put_back`."""
        items, self.items = self.items, []
        waiter, self._committed = self._committed, None
        if self.arrived is not None:
            self.arrived.clear()
        return items, waiter

    @staticmethod
    def committed(waiter: asyncio.Future[None] | None) -> None:
        """The items taken with ``waiter`` are in the database: let channels ack them."""
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_back(self, items: list[tuple[str, T]], waiter: asyncio.Future[None] | None) -> None:
        """The write failed: keep ``items`` first in line; their senders keep waiting until
        a later transaction commits them."""
        self.items[:0] = items
        if waiter is None or waiter.done():
            return
        if self._committed is None:
            self._committed = waiter
        else:
            self._committed.add_done_callback(lambda _: self.committed(waiter))


class ReceiptInbox(Inbox[DeliveryReceipt]):
    """Receipts on their way to :func:`~jingxin.dispatch.receipts.apply_receipts`."""


# An acknowledged part: (how many parts had arrived before its acknowledgement, channel, part).
Ack = tuple[int, str, MoPart]


class MoInbox(Inbox[MoPart]):
    """MO parts on their way to :func:`~jingxin.dispatch.mo_inbox.store_parts`, and the
    parts acknowledged since the last flush (:meth:`take_acks`)."""

    def __init__(self) -> None:
        super().__init__()
        self.acks: list[Ack] = []

    def handler(self, channel: str) -> Callable[[MoPart], asyncio.Future[None]]:
        return _MoHandler(super().handler(channel), self, channel)

    def take_acks(self) -> list[Ack]:
        """The acknowledgements since the last take; call it right after :meth:`take`
        (positions count the parts that take returned)."""
        acks, self.acks = self.acks, []
        return acks

    def put_back(self, items: list[tuple[str, MoPart]], waiter: asyncio.Future[None] | None,
                 acks: list[Ack] | None = None) -> None:  # fmt: skip
        """The write failed: keep ``items`` and ``acks`` first in line."""
        shift = len(items)
        self.acks = [*(acks or ()), *((at + shift, channel, part) for at, channel, part in self.acks)]
        super().put_back(items, waiter)

    def watch(self) -> asyncio.Event:
        """An event set whenever a part arrives (created on the running loop)."""
        if self.arrived is None:
            self.arrived = asyncio.Event()
        return self.arrived


class _MoHandler:
    """A channel's MO part handler (``on_mo_part``), with ``acked`` for what it acknowledged."""

    __slots__ = ("_put", "_inbox", "_channel")

    def __init__(self, put: Callable[[MoPart], asyncio.Future[None]], inbox: MoInbox, channel: str) -> None:
        self._put, self._inbox, self._channel = put, inbox, channel

    def __call__(self, part: MoPart) -> asyncio.Future[None]:
        return self._put(part)

    def acked(self, part: MoPart) -> None:
        inbox = self._inbox
        inbox.acks.append((len(inbox.items), self._channel, part))


Item = tuple[str, DeliveryReceipt]
MoItem = tuple[str, MoPart]
__all__ = ["Inbox", "Item", "MoInbox", "MoItem", "ReceiptInbox"]

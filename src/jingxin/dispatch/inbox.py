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
also wakes the flusher at once, so a reply is not held back a whole flush interval).
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


class MoInbox(Inbox[MoPart]):
    """MO parts on their way to :func:`~jingxin.dispatch.mo_inbox.store_parts`."""

    def watch(self) -> asyncio.Event:
        """An event set whenever a part arrives (created on the running loop)."""
        if self.arrived is None:
            self.arrived = asyncio.Event()
        return self.arrived


Item = tuple[str, DeliveryReceipt]
MoItem = tuple[str, MoPart]
__all__ = ["Inbox", "Item", "MoInbox", "MoItem", "ReceiptInbox"]

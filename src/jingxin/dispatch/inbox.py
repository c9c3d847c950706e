"""Where channels drop receipts until the worker's flusher writes them - and learn when.

Channels call the handler from their event loop; the flusher takes the whole list at once.
Both run on the same loop thread, so swapping the list is enough - no lock.

The handler returns a future that is resolved once the receipt's transaction has
committed; the channel acknowledges the receipt to the SMSC (deliver_sm_resp,
CMPP_DELIVER_RESP) only then. A worker killed between the two leaves the receipt
unacknowledged, and the SMSC delivers it again after the next bind (applying a receipt
twice changes nothing: see :mod:`jingxin.dispatch.receipts`). All receipts taken in one
flush share one future: one allocation per transaction, not per receipt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jingxin.domain.sms import DeliveryReceipt

Item = tuple[str, DeliveryReceipt]


class ReceiptInbox:
    """Where channels drop receipts until the flusher writes them (build channels with
    ``on_receipt=inbox.handler(name)``)."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._committed: asyncio.Future[None] | None = None

    def handler(
        self, channel: str
    ) -> Callable[[DeliveryReceipt], asyncio.Future[None]]:
        def on_receipt(receipt: DeliveryReceipt) -> asyncio.Future[None]:
            self.items.append((channel, receipt))
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            return self._committed

        return on_receipt

    def take(self) -> tuple[list[Item], asyncio.Future[None] | None]:
        """Everything received so far, and the future its senders wait on: pass it to
        :meth:`committed` after the transaction commits, or to :meth:`put_back`."""
        items, self.items = self.items, []
        waiter, self._committed = self._committed, None
        return items, waiter

    @staticmethod
    def committed(waiter: asyncio.Future[None] | None) -> None:
        """The receipts taken with ``waiter`` are in the database: let channels ack them."""
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_back(self, items: list[Item], waiter: asyncio.Future[None] | None) -> None:
        """The write failed: keep ``items`` first in line; their senders keep waiting until
        a later transaction commits them."""
        self.items[:0] = items
        if waiter is None or waiter.done():
            return
        if self._committed is None:
            self._committed = waiter
        else:
            self._committed.add_done_callback(lambda _: self.committed(waiter))

"""Where channels drop receipts until the worker's flusher writes them.

Channels call the handler from their event loop; the flusher takes the whole list at once.
Both run on the same loop thread, so swapping the list is enough - no lock.
"""

from __future__ import annotations

from collections.abc import Callable

from jingxin.domain.sms import DeliveryReceipt


class ReceiptInbox:
    """Where channels drop receipts until the flusher writes them (build channels with
    ``on_receipt=inbox.handler(name)``)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, DeliveryReceipt]] = []

    def handler(self, channel: str) -> Callable[[DeliveryReceipt], None]:
        def on_receipt(receipt: DeliveryReceipt) -> None:
            self.items.append((channel, receipt))

        return on_receipt

    def take(self) -> list[tuple[str, DeliveryReceipt]]:
        items, self.items = self.items, []
        return items

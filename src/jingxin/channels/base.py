"""The Channel protocol: what dispatch needs from any SMSC link, whatever the protocol.

A channel is started (connect, bind), submits :class:`~jingxin.domain.sms.OutboundSms`
messages and answers with a :class:`~jingxin.domain.sms.SubmitResult`, and hands receipts
and mobile-originated messages to the callbacks it was built with (``on_mo_part``, when
given, takes every MO PDU raw and gates its acknowledgement; else ``on_mo`` gets whole
messages reassembled in memory). Temporary failures are
raised as :class:`~jingxin.errors.Retry` (with a delay), everything else as
:class:`~jingxin.errors.ChannelError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from jingxin.domain.sms import DeliveryReceipt, MobileOriginated, MoPart, OutboundSms, SubmitResult

ReceiptHandler = Callable[[DeliveryReceipt], Awaitable[None] | None]
MoHandler = Callable[[MobileOriginated], Awaitable[None] | None]
# The durable inbox: each MO PDU as it came; an awaitable returned delays the PDU's
# acknowledgement until it resolves (after commit), exactly as for receipts.
MoPartHandler = Callable[[MoPart], Awaitable[None] | None]


@runtime_checkable
class Channel(Protocol):
    """An SMSC link. Implementations: SMPP, CMPP, and the in-memory one for tests."""

    name: str

    async def start(self) -> None:
        """Connect and bind; returns once the link can submit. Raises ChannelError."""

    async def submit(self, message: OutboundSms) -> SubmitResult:
        """Send every part of ``message``; returns when the SMSC has answered them all."""

    async def close(self) -> None:
        """Unbind cleanly and disconnect; submits still in flight are answered or reported."""

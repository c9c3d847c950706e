"""In-memory channels named for their scenario, and a store/worker builder for tests."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from jingxin.domain.sms import DeliveryReceipt, OutboundSms, ReceiptStatus, SubmitResult
from jingxin.errors import ChannelError, Retry

_ids = itertools.count(1)


class HappyChannel:
    """Answers every part at once; sends one receipt per part (``status``) soon after.

    ``receipt_first``: the receipt is handed over *before* submit returns, as a fast SMSC
    sometimes does."""

    def __init__(
        self,
        name: str = "happy",
        *,
        on_receipt=None,
        status=ReceiptStatus.DELIVERED,
        receipt_first: bool = False,
        per_part: int = 67,
        receipts: bool = True,
    ) -> None:
        self.name = name
        self.on_receipt = on_receipt
        self.status = status
        self.receipt_first = receipt_first
        self.per_part = per_part
        self.receipts = receipts
        self.bound = True
        self.sent: list[OutboundSms] = []

    async def start(self) -> None:
        self.bound = True

    async def close(self) -> None:
        self.bound = False

    def parts_of(self, message: OutboundSms) -> int:
        return max(1, -(-len(message.text) // self.per_part))

    async def submit(self, message: OutboundSms) -> SubmitResult:
        self.sent.append(message)
        ids = tuple(f"{self.name}-{next(_ids)}" for _ in range(self.parts_of(message)))
        if self.receipts:
            if self.receipt_first:
                self._receipts(ids)
            else:
                asyncio.get_running_loop().call_later(0.01, self._receipts, ids)
        return SubmitResult(message.reference, ids, len(ids), datetime.now(UTC))

    def _receipts(self, ids: tuple[str, ...]) -> None:
        for sid in ids:
            self.on_receipt(
                DeliveryReceipt(
                    sid, self.status_for(sid), None, received_at=datetime.now(UTC)
                )
            )

    def status_for(self, smsc_id: str) -> ReceiptStatus:
        return self.status


class ThrottlingChannel(HappyChannel):
    """Refuses the first ``refusals`` submits with a temporary error, then behaves."""

    def __init__(self, name: str = "throttling", *, refusals: int = 2, **kw) -> None:
        super().__init__(name, **kw)
        self.refusals = refusals

    async def submit(self, message: OutboundSms) -> SubmitResult:
        if self.refusals > 0:
            self.refusals -= 1
            raise Retry("ESME_RTHROTTLED", delay=0.01)
        return await super().submit(message)


class RefusingChannel(HappyChannel):
    """Refuses every submit permanently (an invalid destination)."""

    async def submit(self, message: OutboundSms) -> SubmitResult:
        self.sent.append(message)
        error = ChannelError("submit_sm refused: ESME_RINVDSTADR")
        error.status = 0x0B  # type: ignore[attr-defined]
        raise error


class SilentChannel(HappyChannel):
    """Sends, but the response never comes for the first ``silences`` submits (unresolved)."""

    def __init__(self, name: str = "silent", *, silences: int = 1, **kw) -> None:
        super().__init__(name, **kw)
        self.silences = silences

    async def submit(self, message: OutboundSms) -> SubmitResult:
        if self.silences > 0:
            self.silences -= 1
            self.sent.append(message)
            error = ChannelError("unresolved: no response within 10s")
            error.unresolved = True  # type: ignore[attr-defined]
            raise error
        return await super().submit(message)


class UnboundChannel(HappyChannel):
    """Never binds: routing must fail over."""

    def __init__(self, name: str = "unbound", **kw) -> None:
        super().__init__(name, **kw)
        self.bound = False

    async def start(self) -> None:
        raise ChannelError(f"{self.name}: bind refused")

    async def submit(self, message: OutboundSms) -> SubmitResult:
        raise Retry(f"{self.name}: link is down", delay=0.01)


def make_worker(store, channel_types, *, rules=(), **config):
    """A Worker over fakes: ``channel_types`` maps name -> (class, kwargs)."""
    from jingxin.dispatch.routing import Router
    from jingxin.dispatch.worker import ReceiptInbox, Worker, WorkerConfig

    inbox = ReceiptInbox()
    channels = {
        name: cls(name, on_receipt=inbox.handler(name), **kw)
        for name, (cls, kw) in channel_types.items()
    }
    router = Router(
        rules=rules, channels=list(channels), bound=lambda n: channels[n].bound
    )
    config.setdefault("name", "test-worker")
    config.setdefault("idle_sleep", 0.01)
    config.setdefault("flush_interval", 0.01)
    worker = Worker(
        store=store,
        channels=channels,
        router=router,
        inbox=inbox,
        config=WorkerConfig(**config),
    )
    return worker, channels


def entries(n, *, category="marketing", prefix="k", text="hello", **kw):
    from jingxin.dispatch.outbox import OutboxEntry

    return [
        OutboxEntry(
            tenant_id="default",
            msisdn=f"+86138{i:08d}",
            category=category,
            text=text,
            idempotency_key=f"{prefix}{i}",
            **kw,
        )
        for i in range(n)
    ]


def states(store):
    from sqlalchemy import func, select

    from jingxin.data.store.models import Message

    with store.sessions() as s:
        return dict(
            s.execute(select(Message.state, func.count()).group_by(Message.state)).all()
        )

"""Receipts are acknowledged to the SMSC only once committed, and applying one twice is harmless.

Fakes only: the worker's inbox and flush over SQLite, an SMPP session on a fake transport.
"""

from __future__ import annotations

import asyncio

import pytest
from dispatch_fakes import HappyChannel, entries, make_worker, states
from sqlalchemy import func, select

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.framer import Framer
from jingxin.channels.smpp.session import SessionConfig, SmppSession
from jingxin.data.store.models import Receipt, utc_now
from jingxin.dispatch.inbox import ReceiptInbox
from jingxin.dispatch.outbox import enqueue
from jingxin.dispatch.receipts import apply_receipts
from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus
from jingxin.errors import StoreError


def _receipt_rows(store) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(Receipt))


async def _submitted_one(store) -> tuple:
    """A worker that has submitted one message (receipts held back), and its SMSC id."""
    enqueue(store, entries=entries(1))
    worker, _ = make_worker(store, {"happy": (HappyChannel, {"receipts": False})})
    await worker.run(once=True, linger=0.2)
    assert states(store) == {"submitted": 1}
    with store.sessions() as s:
        from jingxin.data.store.models import MessagePart

        smsc_id = s.scalar(select(MessagePart.smsc_id))
    return worker, smsc_id


async def test_the_ack_waits_for_the_commit_and_survives_a_failed_write(
    store, monkeypatch
) -> None:
    worker, smsc_id = await _submitted_one(store)
    on_receipt = worker.inbox.handler("happy")
    committed_rows: list[int] = []
    # Given a receipt handed to the inbox
    ack = on_receipt(
        DeliveryReceipt(smsc_id, ReceiptStatus.DELIVERED, received_at=utc_now())
    )
    ack.add_done_callback(lambda _: committed_rows.append(_receipt_rows(store)))
    assert not ack.done()
    # When the first write fails (the database went away)
    real = worker.write_back

    def failing(**kwargs):
        raise StoreError("database unavailable")

    monkeypatch.setattr(worker, "write_back", failing)
    with pytest.raises(StoreError):
        worker.flush()
    await asyncio.sleep(0)
    # Then the receipt is neither acknowledged nor lost
    assert not ack.done() and len(worker.inbox.items) == 1
    # And when a later write commits it, the ack is released - with the row already there
    monkeypatch.setattr(worker, "write_back", real)
    later = on_receipt(
        DeliveryReceipt("unknown-id", ReceiptStatus.DELIVERED, received_at=utc_now())
    )
    worker.flush()
    await asyncio.sleep(0)
    assert ack.done() and later.done()
    assert committed_rows == [1]
    assert states(store) == {"delivered": 1}


async def test_receipts_of_one_flush_share_one_future() -> None:
    inbox = ReceiptInbox()
    first = inbox.handler("a")(DeliveryReceipt("1", ReceiptStatus.DELIVERED))
    second = inbox.handler("b")(DeliveryReceipt("2", ReceiptStatus.DELIVERED))
    items, waiter = inbox.take()
    third = inbox.handler("a")(DeliveryReceipt("3", ReceiptStatus.DELIVERED))
    assert first is second is waiter and third is not waiter and len(items) == 2
    inbox.committed(waiter)
    assert first.done() and not third.done()


def test_a_receipt_delivered_twice_changes_nothing_the_second_time(store) -> None:
    from jingxin.dispatch.claim import claim
    from jingxin.dispatch.outbox import Submitted, record_submitted

    enqueue(store, entries=entries(1))
    now = utc_now()
    (claimed,) = claim(store, worker="w", limit=1, now=now)
    with store.engine.begin() as conn:
        record_submitted(
            conn, submitted=[Submitted(claimed.id, "ch", ("s1",), now, None)], now=now
        )
    receipt = ("ch", DeliveryReceipt("s1", ReceiptStatus.DELIVERED, received_at=now))
    # Given a receipt applied once
    with store.engine.begin() as conn:
        first = apply_receipts(conn, receipts=[receipt], now=now)
    # When the SMSC delivers it again (its ack was lost with a killed worker)
    with store.engine.begin() as conn:
        again = apply_receipts(conn, receipts=[receipt], now=now)
    # Then the message stays delivered, nothing is finished twice, nothing logged twice
    assert [f.state for f in first.finished] == ["delivered"] and again.finished == []
    assert again.duplicates == 1
    assert states(store) == {"delivered": 1} and _receipt_rows(store) == 1


# --------------------------------------------------------------------------- SMPP session


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.framer = Framer()
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames += self.framer.feed(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def take(self) -> list[p.Pdu]:
        out = [codec.decode(frame) for frame in self.frames]
        self.frames.clear()
        return out


def _receipt_pdu(seq: int, smsc_id: str) -> bytes:
    text = f"id:{smsc_id} sub:001 dlvrd:001 stat:DELIVRD err:000 text:x"
    return codec.encode(p.DeliverSm(seq, source_addr="8613800138000", esm_class=0x04,
                                    short_message=text.encode()))  # fmt: skip


async def _ticks() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_deliver_sm_resp_waits_for_the_commit_without_blocking_the_link() -> None:
    inbox = ReceiptInbox()
    channel = SmppChannel(
        name="sim", config=SessionConfig(), on_receipt=inbox.handler("sim")
    )
    session = SmppSession(SessionConfig(), on_deliver=channel._on_deliver)
    transport = _Transport()
    session.connection_made(transport)
    # Given a receipt received and not yet committed
    session.data_received(_receipt_pdu(7, "a1"))
    _, waiter = inbox.take()
    await _ticks()
    assert transport.take() == []
    # When more PDUs arrive meanwhile, they are read and handled (no head-of-line block)
    session.data_received(_receipt_pdu(8, "a2") + codec.encode(p.EnquireLink(9)))
    await _ticks()
    assert [type(pdu) for pdu in transport.take()] == [p.EnquireLinkResp]
    assert [r.message_id for _, r in inbox.items] == ["a2"]
    # Then the first receipt is acknowledged once its transaction commits, the second later
    inbox.committed(waiter)
    await _ticks()
    assert [(type(pdu), pdu.sequence_number) for pdu in transport.take()] == [
        (p.DeliverSmResp, 7)
    ]
    inbox.committed(inbox.take()[1])
    await _ticks()
    assert [
        (type(pdu), pdu.sequence_number, pdu.command_status) for pdu in transport.take()
    ] == [(p.DeliverSmResp, 8, 0)]
    for task in session._tasks:
        task.cancel()


async def test_without_a_worker_a_receipt_is_acknowledged_at_once() -> None:
    received: list = []
    channel = SmppChannel(
        name="sim", config=SessionConfig(), on_receipt=received.append
    )
    session = SmppSession(SessionConfig(), on_deliver=channel._on_deliver)
    transport = _Transport()
    session.connection_made(transport)
    session.data_received(_receipt_pdu(3, "b1"))
    await _ticks()
    assert [(type(pdu), pdu.sequence_number) for pdu in transport.take()] == [
        (p.DeliverSmResp, 3)
    ]
    assert received[0].message_id == "b1"
    for task in session._tasks:
        task.cancel()


async def test_a_failed_handler_asks_the_smsc_to_resend() -> None:
    async def broken(_receipt) -> None:
        raise RuntimeError("boom")

    channel = SmppChannel(name="sim", config=SessionConfig(), on_receipt=broken)
    session = SmppSession(SessionConfig(), on_deliver=channel._on_deliver)
    transport = _Transport()
    session.connection_made(transport)
    session.data_received(_receipt_pdu(4, "c1"))
    await _ticks()
    (resp,) = transport.take()
    assert (type(resp), resp.sequence_number, resp.command_status) == (
        p.DeliverSmResp,
        4,
        0x64,
    )
    for task in session._tasks:
        task.cancel()

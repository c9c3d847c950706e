"""Receipts are acknowledged to the SMSC only once committed, and applying one twice is harmless.

Fakes only: the worker's inbox and flush over SQLite. The SMPP session's side (the
deliver_sm_resp waiting for the commit) is in tests/unit/channels/smpp/test_smpp_receipt_ack.py.
"""

from __future__ import annotations

import asyncio

import pytest
from dispatch_fakes import HappyChannel, entries, make_worker, states
from sqlalchemy import func, select

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

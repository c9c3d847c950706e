"""deliver_sm_resp for a receipt waits until the worker has committed it, without holding
up the link; a failed handler asks the SMSC to resend (a session on a fake transport)."""

from __future__ import annotations

import asyncio

from smpp_fakes import FakeTransport

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.session import SessionConfig, SmppSession
from jingxin.dispatch.inbox import ReceiptInbox


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
    transport = FakeTransport(session)
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
    transport = FakeTransport(session)
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
    transport = FakeTransport(session)
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

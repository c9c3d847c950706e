"""deliver_sm_resp for a receipt waits until the worker has committed it, without holding
up the link; a failed handler asks the SMSC to resend; an MO part is reported to the
inbox as acknowledged once its resp is written on the open link, and only then (a session
on a fake transport)."""

from __future__ import annotations

import asyncio

from smpp_fakes import FakeTransport

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.session import SessionConfig, SmppSession
from jingxin.dispatch.inbox import MoInbox, ReceiptInbox


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


def _mo_session() -> tuple[MoInbox, SmppSession, FakeTransport]:
    """An SMPP channel handing MO to the worker's durable inbox, its session on a fake link."""
    inbox = MoInbox()
    channel = SmppChannel(name="sim", config=SessionConfig(), on_mo_part=inbox.handler("sim"))
    session = SmppSession(SessionConfig(), on_deliver=channel._on_deliver)
    transport = FakeTransport(session)
    session.connection_made(transport)
    return inbox, session, transport


def _mo_pdu(seq: int, text: bytes, **tlvs) -> bytes:
    return codec.encode(p.DeliverSm(seq, source_addr="8613800138000", destination_addr="10086",
                                    short_message=text, tlvs=tlvs))  # fmt: skip


async def test_an_mo_acknowledged_on_the_open_link_is_reported_to_the_inbox() -> None:
    # Given an SMPP channel handing MO to the worker's durable inbox
    inbox, session, transport = _mo_session()
    # When "Y" arrives and is committed
    session.data_received(_mo_pdu(5, b"Y"))
    [(_, part)], waiter = inbox.take()
    assert inbox.take_acks() == []  # not before its resp is written
    inbox.committed(waiter)
    await _ticks()
    # Then its deliver_sm_resp is written and the part reported acknowledged, in order
    # among the parts (none came after it yet)
    assert [(type(pdu), pdu.sequence_number) for pdu in transport.take()] == [(p.DeliverSmResp, 5)]
    assert inbox.take_acks() == [(0, "sim", part)]
    # And an MO the SMSC ids itself needs no report (its id tells a redelivery)
    session.data_received(_mo_pdu(6, b"Y", receipted_message_id="m-6"))
    _, waiter = inbox.take()
    inbox.committed(waiter)
    await _ticks()
    assert len(transport.take()) == 1 and inbox.take_acks() == []
    for task in session._tasks:
        task.cancel()


async def test_an_mo_whose_link_dropped_or_that_failed_is_not_reported() -> None:
    inbox, session, transport = _mo_session()
    # Given one MO whose store fails (the worker puts it back) ...
    session.data_received(_mo_pdu(7, b"YE"))
    _, failed = inbox.take()
    failed.set_exception(RuntimeError("database went away"))
    await _ticks()
    assert [pdu.command_status for pdu in transport.take()] == [0x64]  # resend
    # ... and one committed after the link dropped
    session.data_received(_mo_pdu(8, b"TD"))
    _, waiter = inbox.take()
    transport.close()
    inbox.committed(waiter)
    await _ticks()
    # Then neither is reported: the SMSC delivers both again
    assert transport.take() == [] and inbox.take_acks() == []


async def test_acks_put_back_keep_their_place_before_what_came_since() -> None:
    inbox = MoInbox()
    put = inbox.handler("sim")
    put(first := _part("A"))
    put.acked(first)
    items, waiter = inbox.take()
    acks = inbox.take_acks()
    assert acks == [(1, "sim", first)]
    # While that write fails, another part and acknowledgement come
    put(later := _part("B"))
    put.acked(later)
    inbox.put_back(items, waiter, acks)
    # Then the old come first, and the new acknowledgement counts the part put back
    assert [part for _, part in inbox.items] == [first, later]
    assert inbox.take_acks() == [(1, "sim", first), (2, "sim", later)]


def _part(text: str):
    from datetime import UTC, datetime

    from jingxin.domain.sms import MoPart

    return MoPart(protocol="smpp", source="8613800138000", destination="10086", coding=0,
                  payload=text.encode(), received_at=datetime.now(UTC))  # fmt: skip

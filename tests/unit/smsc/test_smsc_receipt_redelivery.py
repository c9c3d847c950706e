"""The simulator re-delivers receipts the ESME never acknowledged, as a real SMSC does."""

from __future__ import annotations

import asyncio

from smsc_fakes import FakeTransport

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.record import Record
from jingxin.smsc.smpp_server import SmppSmsc, SmscConnection


def _connect(smsc: SmppSmsc) -> tuple[SmscConnection, FakeTransport]:
    conn, transport = SmscConnection(smsc), FakeTransport()
    conn.connection_made(transport)
    return conn, transport


async def _exchange(
    conn: SmscConnection, transport: FakeTransport, *messages: p.Pdu
) -> list[p.Pdu]:
    for message in messages:
        conn.data_received(codec.encode(message))
    for _ in range(3):
        await asyncio.sleep(0)
    out = [codec.decode(frame) for frame in transport.frames]
    transport.frames.clear()
    return out


def _submit(seq: int, destination: str) -> p.SubmitSm:
    return p.SubmitSm(seq, source_addr="1069", destination_addr=destination, registered_delivery=1,
                      short_message=b"hi")  # fmt: skip


async def test_unacknowledged_receipts_come_again_on_the_next_bind() -> None:
    smsc = SmppSmsc(Behaviour(receipt_delay=0.0), Record())
    conn, transport = _connect(smsc)
    await _exchange(conn, transport, p.BindTransceiver(1, 0, "esme"))
    # Given two receipts, of which the ESME acknowledges only the first
    out = await _exchange(
        conn, transport, _submit(2, "8613800000001"), _submit(3, "8613800000002")
    )
    receipts = [m for m in out if isinstance(m, p.DeliverSm)]
    assert len(receipts) == 2
    await _exchange(conn, transport, p.DeliverSmResp(receipts[0].sequence_number, 0))
    # When the connection drops (the worker was killed) and the ESME binds again
    conn.connection_lost(None)
    again, transport2 = _connect(smsc)
    out = await _exchange(again, transport2, p.BindTransceiver(1, 0, "esme"))
    # Then only the unacknowledged receipt is delivered again, and once acked it stays done
    redelivered = [m for m in out if isinstance(m, p.DeliverSm)]
    assert [m.tlvs["receipted_message_id"] for m in redelivered] == [
        receipts[1].tlvs["receipted_message_id"]
    ]
    assert smsc.receipts_resent == 1
    await _exchange(
        again, transport2, p.DeliverSmResp(redelivered[0].sequence_number, 0)
    )
    again.connection_lost(None)
    third, transport3 = _connect(smsc)
    out = await _exchange(third, transport3, p.BindTransceiver(1, 0, "esme"))
    assert [type(m) for m in out] == [p.BindTransceiverResp]


async def test_a_receipt_for_an_esme_that_is_gone_waits_for_its_bind() -> None:
    smsc = SmppSmsc(Behaviour(receipt_delay=0.05), Record())
    conn, transport = _connect(smsc)
    await _exchange(conn, transport, p.BindTransceiver(1, 0, "esme"))
    await _exchange(conn, transport, _submit(2, "8613800000003"))
    # Given the ESME gone before its receipt was due
    conn.connection_lost(None)
    await asyncio.sleep(0.1)
    # When it binds again, the receipt is there
    again, transport2 = _connect(smsc)
    out = await _exchange(again, transport2, p.BindTransceiver(1, 0, "esme"))
    assert [type(m) for m in out] == [p.BindTransceiverResp, p.DeliverSm]


async def test_a_refused_receipt_is_sent_again_later(monkeypatch) -> None:
    monkeypatch.setattr("jingxin.smsc.smpp_server.RESEND_AFTER", 0.01)
    smsc = SmppSmsc(Behaviour(receipt_delay=0.0), Record())
    conn, transport = _connect(smsc)
    await _exchange(conn, transport, p.BindTransceiver(1, 0, "esme"))
    (_, receipt) = await _exchange(conn, transport, _submit(2, "8613800000004"))
    # When the ESME answers ESME_RX_T_APPN (it could not take the receipt now)
    await _exchange(conn, transport, p.DeliverSmResp(receipt.sequence_number, 0x64))
    await asyncio.sleep(0.05)
    out = await _exchange(conn, transport)
    # Then the same receipt comes again under a new sequence number
    assert [type(m) for m in out] == [p.DeliverSm]
    assert out[0].short_message == receipt.short_message
    assert out[0].sequence_number != receipt.sequence_number

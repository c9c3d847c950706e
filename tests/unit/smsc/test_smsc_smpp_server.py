"""The simulator's SMPP connection logic against a fake transport (no sockets)."""

from __future__ import annotations

import asyncio

from smsc_fakes import FakeTransport

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.record import Record
from jingxin.smsc.smpp_server import SmppSmsc, SmscConnection


async def _connect(behaviour: Behaviour) -> tuple[SmscConnection, FakeTransport, SmppSmsc]:
    smsc = SmppSmsc(behaviour, Record())
    conn, transport = SmscConnection(smsc), FakeTransport()
    conn.connection_made(transport)
    return conn, transport, smsc


async def _exchange(conn: SmscConnection, transport: FakeTransport, *messages: p.Pdu, wait: float = 0) -> list[p.Pdu]:
    for message in messages:
        conn.data_received(codec.encode(message))
    await asyncio.sleep(wait)
    for _ in range(3):
        await asyncio.sleep(0)
    out = [codec.decode(frame) for frame in transport.frames]
    transport.frames.clear()
    return out


async def test_bind_checks_credentials() -> None:
    conn, transport, _ = await _connect(Behaviour(credentials={"esme": "pw"}))
    answers = await _exchange(conn, transport, p.BindTransceiver(1, 0, "who", "pw"), p.BindTransceiver(2, 0, "esme", "bad"),
                              p.BindTransceiver(3, 0, "esme", "pw"), p.BindTransceiver(4, 0, "esme", "pw"))  # fmt: skip
    assert [a.command_status for a in answers] == [0x0F, 0x0E, 0x00, 0x05]  # RINVSYSID, RINVPASWD, OK, RALYBND


async def test_submit_before_bind_and_garbage() -> None:
    conn, transport, smsc = await _connect(Behaviour())
    answers = await _exchange(conn, transport, p.SubmitSm(1, destination_addr="1"))
    conn.data_received(codec.HEADER.pack(16, 0x77, 0, 9))
    answers += await _exchange(conn, transport)
    assert [(type(a), a.command_status, a.sequence_number) for a in answers] == [
        (p.SubmitSmResp, 0x04, 1), (p.GenericNack, 0x03, 9)]  # fmt: skip
    assert smsc.record.counts["garbage"] == 1


async def test_throttling_above_tps() -> None:
    conn, transport, _ = await _connect(Behaviour(tps=5.0))
    await _exchange(conn, transport, p.BindTransmitter(1, 0, "esme"))
    answers = await _exchange(conn, transport, *[p.SubmitSm(i, destination_addr="1") for i in range(2, 12)])
    statuses = [a.command_status for a in answers]
    assert statuses.count(0) == 1 and statuses.count(0x58) == 9  # burst of one at 5 TPS


async def test_receipt_follows_with_text_and_tlvs() -> None:
    conn, transport, smsc = await _connect(Behaviour(receipt_delay=0.0, status_mix={"UNDELIV": 1.0}))
    await _exchange(conn, transport, p.BindTransceiver(1, 0, "esme"))
    resp, dr = await _exchange(conn, transport, p.SubmitSm(2, source_addr="1069", destination_addr="8613800138000",
                                                            registered_delivery=1, short_message=b"hello"))  # fmt: skip
    assert isinstance(resp, p.SubmitSmResp) and isinstance(dr, p.DeliverSm)
    assert dr.esm_class == 0x04 and dr.tlvs["receipted_message_id"] == resp.message_id
    assert dr.tlvs["message_state"] == 5 and b"stat:UNDELIV" in dr.short_message and b"text:hello" in dr.short_message
    assert smsc.record.of("submit_sm")[0].fields["destination_addr"] == "8613800138000"


async def test_receipt_before_response_and_lost_responses() -> None:
    conn, transport, _ = await _connect(Behaviour(receipt_before_response=True, receipt_delay=0, lose_response=1.0))
    await _exchange(conn, transport, p.BindTransceiver(1, 0, "esme"))
    answers = await _exchange(conn, transport, p.SubmitSm(2, destination_addr="1", registered_delivery=1))
    assert [type(a) for a in answers] == [p.DeliverSm]  # receipt only: the response was "lost"


async def test_mo_injection_reaches_a_receiver_in_parts() -> None:
    conn, transport, smsc = await _connect(Behaviour())
    await _exchange(conn, transport, p.BindReceiver(1, 0, "esme"))
    assert smsc.inject_mo(source="8613800138000", destination="10086", text="中" * 100) == 2
    parts = await _exchange(conn, transport)
    assert [(m.esm_class, m.data_coding) for m in parts] == [(0x40, 8), (0x40, 8)]

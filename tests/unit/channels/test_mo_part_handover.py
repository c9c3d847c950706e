"""Channels hand each MO PDU raw to the durable inbox and acknowledge it only after commit
(SMPP deliver_sm_resp, CMPP_DELIVER_RESP), without sockets."""

from __future__ import annotations

import asyncio

from jingxin.channels.cmpp.client import CmppChannel
from jingxin.channels.cmpp.concatenation import concat_udh
from jingxin.channels.cmpp.pdu import Deliver, DeliverResp
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.concat import build_udh
from jingxin.channels.smpp.session import SessionConfig

MSISDN = "8613800138000"


class FakeLink:
    def __init__(self) -> None:
        self.is_open, self.sent = True, []

    def send(self, pdu) -> bool:
        self.sent.append(pdu)
        return True


async def test_smpp_mo_parts_go_raw_and_wait_for_the_commit() -> None:
    # Given an SMPP channel wired to an inbox that commits later
    loop = asyncio.get_running_loop()
    parts, committed = [], loop.create_future()

    def on_mo_part(part):
        parts.append(part)
        return committed

    mos: list = []
    channel = SmppChannel(name="s", config=SessionConfig(), on_mo=mos.append, on_mo_part=on_mo_part)
    # When part 2 of 2 (UCS-2) and a GSM single arrive
    answer = channel._on_deliver(p.DeliverSm(
        1, source_addr=MSISDN, destination_addr="10086", esm_class=0x40, data_coding=8,
        short_message=build_udh(9, 2, 2) + "余额".encode("utf-16-be"),
    ))  # fmt: skip
    single = channel._on_deliver(p.DeliverSm(2, source_addr=MSISDN, destination_addr="10086",
                                             short_message=b"TD"))  # fmt: skip
    # Then each is handed over as it came (UDH removed, not reassembled, not decoded) ...
    assert [(x.ref, x.total, x.seq, x.coding, x.payload) for x in parts] == [
        (9, 2, 2, 8, "余额".encode("utf-16-be")), (None, None, None, 0, b"TD")]
    assert parts[0].protocol == "smpp" and parts[0].extra["channel"] == "s" and mos == []
    # ... and the deliver_sm_resp waits on the commit's future
    assert answer is committed and single is committed


async def test_a_receipt_still_goes_to_on_receipt() -> None:
    receipts: list = []
    channel = SmppChannel(name="s", config=SessionConfig(), on_receipt=receipts.append,
                          on_mo_part=lambda part: None)  # fmt: skip
    assert channel._on_deliver(p.DeliverSm(1, source_addr=MSISDN, esm_class=0x04,
                                           short_message=b"id:7 stat:DELIVRD err:0")) == 0  # fmt: skip
    assert len(receipts) == 1


def _cmpp(on_mo_part) -> CmppChannel:
    return CmppChannel(name="cm", host="127.0.0.1", port=1, sp_id="901234", secret="s",
                       source_addr="1069", on_mo_part=on_mo_part)  # fmt: skip


async def test_cmpp_mo_is_acknowledged_after_commit_and_not_when_the_write_fails() -> None:
    loop = asyncio.get_running_loop()
    parts, pending = [], []

    def on_mo_part(part):
        parts.append(part)
        pending.append(loop.create_future())
        return pending[-1]

    channel, link = _cmpp(on_mo_part), FakeLink()
    # Given a long GBK-free UCS-2 part with TP_udhi 0x40 and a GBK single (Msg_Fmt 15)
    channel._on_request(link, Deliver(
        msg_id=1234, dest_id="1069012345", src_terminal_id=MSISDN, msg_fmt=8, tp_udhi=0x40,
        msg_content=concat_udh(reference=5, total=2, number=1) + "查询".encode("utf-16-be"),
        registered_delivery=0, sequence_id=7,
    ))  # fmt: skip
    channel._on_request(link, Deliver(
        msg_id=1235, dest_id="1069012345", src_terminal_id=MSISDN, msg_fmt=15,
        msg_content="退订".encode("gbk"), registered_delivery=0, sequence_id=8,
    ))  # fmt: skip
    await asyncio.sleep(0)
    assert link.sent == []
    assert [(x.ref, x.total, x.seq, x.coding, x.smsc_id) for x in parts] == [
        (5, 2, 1, 8, parts[0].smsc_id), (None, None, None, 15, parts[1].smsc_id)]
    assert parts[0].smsc_id != parts[1].smsc_id and parts[1].payload == "退订".encode("gbk")
    # When the first commits and the second's write fails
    pending[0].set_result(None)
    pending[1].set_exception(RuntimeError("database gone"))
    await asyncio.sleep(0)
    # Then only the first is acknowledged: the ISMG sends the second again
    assert [(type(x), x.sequence_id) for x in link.sent] == [(DeliverResp, 7)]


async def test_cmpp_udh_that_does_not_parse_is_still_handed_over_whole() -> None:
    parts: list = []
    channel, link = _cmpp(lambda part: parts.append(part)), FakeLink()
    channel._on_request(link, Deliver(
        msg_id=1, dest_id="1069", src_terminal_id=MSISDN, msg_fmt=8, tp_udhi=1,
        msg_content=b"\x09\x00\x03", registered_delivery=0, sequence_id=3,
    ))  # fmt: skip
    assert parts[0].payload == b"\x09\x00\x03" and "udh_error" in parts[0].extra
    assert [x.sequence_id for x in link.sent] == [3]

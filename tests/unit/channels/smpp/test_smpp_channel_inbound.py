"""SmppChannel's inbound side without sockets: receipts, MO, concatenation, handlers."""

from __future__ import annotations

import asyncio

from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.concat import build_udh
from jingxin.channels.smpp.session import SessionConfig
from jingxin.domain.sms import ReceiptStatus

MSISDN = "8613800138000"


def _channel(**kwargs: object) -> tuple[SmppChannel, list, list]:
    receipts: list = []
    mos: list = []
    channel = SmppChannel(name="t", config=SessionConfig(), on_receipt=receipts.append, on_mo=mos.append, **kwargs)  # type: ignore[arg-type]
    return channel, receipts, mos


def _mo(body: bytes, *, esm_class: int = 0, coding: int = 0, tlvs: dict | None = None) -> p.Pdu:
    return p.DeliverSm(1, source_addr=MSISDN, destination_addr="10086", esm_class=esm_class,
                       data_coding=coding, short_message=body, tlvs=tlvs or {})  # fmt: skip


async def test_receipt_goes_to_on_receipt_and_is_acknowledged() -> None:
    channel, receipts, mos = _channel()
    status = channel._on_deliver(p.DeliverSm(1, source_addr=MSISDN, esm_class=0x04, short_message=b"id:7 stat:UNDELIV err:5"))
    assert status == 0 and not mos
    assert (receipts[0].message_id, receipts[0].status, receipts[0].error_code) == ("7", ReceiptStatus.UNDELIVERABLE, "5")


async def test_udh_parts_in_any_order_become_one_mo() -> None:
    channel, _, mos = _channel()
    text = "查询".encode("utf-16-be")
    channel._on_deliver(_mo(build_udh(9, 2, 2) + "余额".encode("utf-16-be"), esm_class=0x40, coding=8))
    assert mos == []
    channel._on_deliver(_mo(build_udh(9, 2, 1) + text, esm_class=0x40, coding=8))
    assert (mos[0].text, mos[0].source, mos[0].destination, mos[0].extra["parts"]) == ("查询余额", MSISDN, "10086", "2")


async def test_sar_tlvs_and_data_sm_payload() -> None:
    channel, _, mos = _channel()
    for seq, chunk in ((1, b"hello "), (2, b"world")):
        channel._on_deliver(_mo(chunk, tlvs={"sar_msg_ref_num": 3, "sar_total_segments": 2, "sar_segment_seqnum": seq}))
    channel._on_deliver(p.DataSm(2, source_addr=MSISDN, destination_addr="10086", tlvs={"message_payload": b"41"}))
    assert [m.text for m in mos] == ["hello world", "41"]


async def test_incomplete_mo_is_handed_over_after_the_timeout() -> None:
    channel, _, mos = _channel(mo_timeout=0.05)
    channel._on_deliver(_mo(build_udh(4, 3, 1) + b"part one ", esm_class=0x40))
    expiry = asyncio.create_task(channel._expire_mo_loop())
    await asyncio.sleep(0.2)
    expiry.cancel()
    assert (mos[0].text, mos[0].extra["incomplete"]) == ("part one ", "1/3")


async def test_async_handlers_run_and_their_errors_do_not_escape() -> None:
    seen: list = []

    async def on_mo(mo: object) -> None:
        seen.append(mo)
        raise RuntimeError("handler bug")

    channel = SmppChannel(name="t", config=SessionConfig(), on_mo=on_mo)
    assert channel._on_deliver(_mo(b"41")) == 0
    await asyncio.sleep(0.01)
    assert len(seen) == 1

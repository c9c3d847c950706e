"""The CMPP simulator, like an ISMG, sends status reports again until the SP answers them -
and the channel answers a report only once its handler's future is done."""

from __future__ import annotations

import asyncio

from jingxin.channels.cmpp import CmppChannel, CmppOptions, LinkOptions
from jingxin.domain.sms import DeliveryReceipt, OutboundSms
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.cmpp_server import start_cmpp_server
from jingxin.smsc.record import Record

SP, SECRET = "901234", "s3cret"
LINK = LinkOptions(window=16, connect_timeout=2, response_timeout=2, active_test_interval=5,
                   terminate_timeout=0.5)  # fmt: skip


def _channel(port: int, on_receipt) -> CmppChannel:
    return CmppChannel(name="cm", host="127.0.0.1", port=port, sp_id=SP, secret=SECRET,
                       source_addr="10690000", options=CmppOptions(link=LINK, reconnect=False),
                       on_receipt=on_receipt)  # fmt: skip


async def _until(condition, timeout: float = 3.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_reports_never_answered_come_again_on_the_next_connect() -> None:
    record = Record()
    server, smsc = await start_cmpp_server(
        host="127.0.0.1", port=0, behaviour=Behaviour(credentials={SP: SECRET}, receipt_delay=0.01),
        record=record,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        # Given an SP whose receipts are never committed (a worker about to be killed)
        held: list[DeliveryReceipt] = []

        def uncommitted(receipt: DeliveryReceipt) -> asyncio.Future:
            held.append(receipt)
            return loop.create_future()

        first = _channel(port, uncommitted)
        await asyncio.wait_for(first.start(), 3)
        results = await asyncio.wait_for(asyncio.gather(
            *(first.submit(OutboundSms(f"1380013800{i}", "hi")) for i in range(3))), 3)  # fmt: skip
        await _until(lambda: len(held) == 3)
        assert record.of("CMPP_DELIVER_RESP") == []
        await asyncio.wait_for(first.close(), 5)
        # When the SP connects again with a handler that commits at once
        again: list[DeliveryReceipt] = []
        second = _channel(port, again.append)
        await asyncio.wait_for(second.start(), 3)
        # Then the three reports come again, are answered, and are not sent a third time
        await _until(
            lambda: len(again) == 3 and len(record.of("CMPP_DELIVER_RESP")) == 3
        )
        assert {r.message_id for r in again} == {r.message_ids[0] for r in results}
        assert smsc.receipts_resent == 3 and smsc.unacked_reports == {}
        await asyncio.wait_for(second.close(), 5)
    finally:
        server.close()
        smsc.close()
        await asyncio.wait_for(server.wait_closed(), 2)

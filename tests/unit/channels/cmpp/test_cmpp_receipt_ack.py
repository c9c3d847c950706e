"""CMPP_DELIVER_RESP for a status report waits until the receipt is committed (no sockets)."""

from __future__ import annotations

import asyncio

from jingxin.channels.cmpp.client import CmppChannel
from jingxin.channels.cmpp.pdu import Deliver, DeliverResp
from jingxin.channels.cmpp.report import StatusReport


class FakeLink:
    """Collects what the channel sends back on the link."""

    def __init__(self) -> None:
        self.is_open = True
        self.sent: list = []

    def send(self, pdu) -> bool:
        self.sent.append(pdu)
        return True


def _report(msg_id: int, sequence_id: int) -> Deliver:
    content = StatusReport(msg_id=msg_id, stat="DELIVRD", submit_time="2611231200",
                           done_time="2611231201", dest_terminal_id="8613800138000",
                           smsc_sequence=1).encode()  # fmt: skip
    return Deliver(msg_id=99, dest_id="1069", src_terminal_id="8613800138000",
                   msg_content=content, registered_delivery=1, sequence_id=sequence_id)  # fmt: skip


def _channel(on_receipt) -> CmppChannel:
    return CmppChannel(name="cm", host="127.0.0.1", port=1, sp_id="901234", secret="s",
                       source_addr="1069", on_receipt=on_receipt)  # fmt: skip


async def test_the_resp_waits_for_the_commit_and_a_failed_one_is_not_answered() -> None:
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future] = []

    def on_receipt(_receipt) -> asyncio.Future:
        pending.append(loop.create_future())
        return pending[-1]

    channel, link = _channel(on_receipt), FakeLink()
    # Given two status reports whose receipts are not yet committed
    channel._on_request(link, _report(1, 7))
    channel._on_request(link, _report(2, 8))
    await asyncio.sleep(0)
    assert link.sent == []
    # When the first commits and the second's write fails for good
    pending[0].set_result(None)
    pending[1].set_exception(RuntimeError("database gone"))
    await asyncio.sleep(0)
    # Then only the first is acknowledged: the ISMG sends the second again
    assert [(type(p), p.sequence_id, p.result) for p in link.sent] == [
        (DeliverResp, 7, 0)
    ]


async def test_without_a_worker_the_report_is_answered_at_once() -> None:
    received: list = []
    channel, link = _channel(received.append), FakeLink()
    channel._on_request(link, _report(3, 9))
    assert [(type(p), p.sequence_id) for p in link.sent] == [(DeliverResp, 9)]
    assert len(received) == 1

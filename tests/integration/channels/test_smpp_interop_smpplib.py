"""Interop: python-smpplib (a third-party ESME) against our simulator."""

from __future__ import annotations

import asyncio

import pytest
import smpplib.client
import smpplib.consts

from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.server import Simulator

pytestmark = pytest.mark.timeout(30)


def _smpplib_session(port: int) -> tuple[list, list, list]:
    sent, received, statuses = [], [], []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        bound = client.bind_transceiver(system_id="smpplib", password="pw")
        statuses.append(bound.status)
        client.send_message(source_addr="10690000", destination_addr="8613800138000", short_message=b"hello smpplib",
                            data_coding=0, registered_delivery=1)  # fmt: skip
        while not (sent and received):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return sent, received, statuses


async def test_smpplib_binds_submits_and_gets_a_receipt() -> None:
    async with Simulator(behaviour=Behaviour(receipt_delay=0.01, credentials={"smpplib": "pw"})) as sim:
        # When smpplib (blocking, in a thread) binds, submits and reads until the receipt
        sent, received, statuses = await asyncio.to_thread(_smpplib_session, sim.smpp_port)
        # Then the bind and submit succeeded and the receipt names the same message id
        assert statuses == [smpplib.consts.SMPP_ESME_ROK]
        message_id = sent[0].message_id.decode()
        assert received[0].receipted_message_id.decode() == message_id
        assert b"stat:DELIVRD" in received[0].short_message
        assert sim.record.of("submit_sm")[0].fields["short_message"] == b"hello smpplib"
        assert sim.record.counts["unbind"] == 1

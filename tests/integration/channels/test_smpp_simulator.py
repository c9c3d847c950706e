"""Our SMPP channel against our simulator over loopback: presets, failures, receipts, MO."""

from __future__ import annotations

import asyncio

import pytest

from jingxin.channels.smpp.channel import SmppChannel
from jingxin.channels.smpp.session import SessionConfig, SmppSession, SubmitError
from jingxin.domain.sms import OutboundSms, ReceiptStatus
from jingxin.errors import ChannelError
from jingxin.smsc.behaviour import Behaviour, preset
from jingxin.smsc.mo import post_mo
from jingxin.smsc.server import Simulator

pytestmark = pytest.mark.timeout(30)
MSISDN = "8613800138000"


def _channel(port: int, **kwargs: object) -> tuple[SmppChannel, list, list]:
    receipts: list = []
    mos: list = []
    config = SessionConfig(port=port, **kwargs.pop("config", {}))  # type: ignore[arg-type]
    channel = SmppChannel(name="sim", config=config, source_addr="10690000",
                          on_receipt=receipts.append, on_mo=mos.append, **kwargs)  # fmt: skip
    return channel, receipts, mos


async def _until(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("mode", ["udh", "payload"])
async def test_happy_submit_long_message_and_receipts(mode: str) -> None:
    async with Simulator(behaviour=Behaviour(receipt_delay=0.01)) as sim:
        channel, receipts, _ = _channel(sim.smpp_port, long_messages=mode)
        await channel.start()
        # When a 3-part Chinese message and a short one are submitted
        long_result = await channel.submit(OutboundSms(destination=MSISDN, text="短信" * 80, reference="r1"))
        short_result = await channel.submit(OutboundSms(destination=MSISDN, text="hello"))
        # Then one id per submitted part, and a DELIVRD receipt for each id
        expected_parts = 3 if mode == "udh" else 1
        assert (long_result.parts, len(long_result.message_ids), long_result.reference) == (expected_parts, expected_parts, "r1")
        ids = {*long_result.message_ids, *short_result.message_ids}
        await _until(lambda: {r.message_id for r in receipts} >= ids)
        assert {r.status for r in receipts} == {ReceiptStatus.DELIVERED}
        submits = sim.record.of("submit_sm")
        assert {s.fields["data_coding"] for s in submits} == {8, 0}
        assert submits[0].fields["destination_addr"] == MSISDN
        await channel.close()


async def test_wrong_password_names_the_status() -> None:
    async with Simulator(behaviour=Behaviour(credentials={"jingxin": "right"})) as sim:
        channel, _, _ = _channel(sim.smpp_port, config={"password": "wrong"})
        with pytest.raises(ChannelError, match=r"ESME_RINVPASWD \(0x0000000E\)"):
            await channel.start()


async def test_throttling_preset_is_absorbed_by_backoff() -> None:
    async with Simulator(behaviour=preset("throttling").with_(tps=200.0)) as sim:
        channel, _, _ = _channel(sim.smpp_port, config={"throttle_backoff": 0.02, "throttle_retries": 20})
        await channel.start()
        results = await asyncio.gather(*(channel.submit(OutboundSms(destination=MSISDN, text=str(i))) for i in range(60)))
        assert len({r.message_ids[0] for r in results}) == 60
        await channel.close()


async def test_mo_over_http_is_reassembled() -> None:
    async with Simulator(http_port=0) as sim:
        channel, _, mos = _channel(sim.smpp_port)
        await channel.start()
        text = "查询话费 " * 30  # UCS-2, 3 parts
        answer = await asyncio.to_thread(post_mo, f"http://127.0.0.1:{sim.http_port}", source=MSISDN,
                                         destination="10086", text=text)  # fmt: skip
        assert answer["parts"] == 3
        await _until(lambda: mos)
        assert (mos[0].source, mos[0].destination, mos[0].text) == (MSISDN, "10086", text)
        await channel.close()


async def test_disconnect_fails_in_flight_as_unresolved_then_rebinds() -> None:
    async with Simulator(behaviour=Behaviour(disconnect=1.0)) as sim:
        channel, _, _ = _channel(sim.smpp_port)
        await channel.start()
        with pytest.raises(SubmitError) as info:
            await channel.submit(OutboundSms(destination=MSISDN, text="x"))
        assert info.value.unresolved
        # When the SMSC behaves again, Then the channel re-binds on its own and sends
        sim.smpp.behaviour = Behaviour()
        for conn in sim.smpp.connections:  # a re-bind may already have happened
            conn.behaviour = sim.smpp.behaviour
        await _until(lambda: channel.session is not None and channel.session.bound and channel.session.is_open)
        result = await channel.submit(OutboundSms(destination=MSISDN, text="y"))
        assert len(result.message_ids) == 1
        await channel.close()


async def test_lost_response_is_unresolved_after_the_response_timeout() -> None:
    async with Simulator(behaviour=Behaviour(lose_response=1.0)) as sim:
        channel, _, _ = _channel(sim.smpp_port, config={"response_timeout": 0.2})
        await channel.start()
        with pytest.raises(SubmitError, match="no response within") as info:
            await channel.submit(OutboundSms(destination=MSISDN, text="x"))
        assert info.value.unresolved
        await channel.close()


async def test_dead_peer_is_detected_by_enquire_link() -> None:
    # Given a peer that binds us and then never answers anything again
    async def silent_after_bind(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(16)
        await reader.readexactly(int.from_bytes(header[:4], "big") - 16)
        writer.write((17).to_bytes(4, "big") + b"\x80\x00\x00\x09" + bytes(4) + header[12:16] + b"\0")
        await reader.read()

    server = await asyncio.start_server(silent_after_bind, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = SessionConfig(port=port, enquire_link_interval=0.2, response_timeout=0.2)
    session = await SmppSession.open(config)
    # Then the session closes itself, naming the reason
    assert "dead peer" in await session.wait_closed(5)
    server.close()


async def test_runner_starts_every_server_on_free_ports() -> None:
    async with Simulator(cmpp_port=0, http_port=0) as sim:
        ports = (sim.smpp_port, sim.cmpp_port, sim.http_port)
        assert all(ports) and len(set(ports)) == 3
        assert sim.status()["smpp_port"] == sim.smpp_port
        with pytest.raises(LookupError):
            sim.inject_mo(source=MSISDN, destination="10086", text="41")  # nobody bound


async def test_client_tps_limit_paces_submits() -> None:
    async with Simulator() as sim:
        channel, _, _ = _channel(sim.smpp_port, config={"tps": 50.0})
        await channel.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(channel.submit(OutboundSms(destination=MSISDN, text=str(i))) for i in range(20)))
        # 20 submits at 50/s with a burst of 5 take at least (20 - 5) / 50 = 0.3 s
        assert loop.time() - start >= 0.28
        await channel.close()


async def test_receipts_reach_a_separate_receiver_bind() -> None:
    async with Simulator(behaviour=Behaviour(receipt_delay=0.01)) as sim:
        # Given one transmitter and one receiver bound with the same system_id
        sender, sender_receipts, _ = _channel(sim.smpp_port, config={"mode": "transmitter"})
        listener, receipts, _ = _channel(sim.smpp_port, config={"mode": "receiver"})
        await sender.start()
        await listener.start()
        result = await sender.submit(OutboundSms(destination=MSISDN, text="split binds"))
        # Then the receipt arrives on the receiver bind only
        await _until(lambda: receipts)
        assert receipts[0].message_id == result.message_ids[0] and not sender_receipts
        await sender.close()
        await listener.close()


async def test_a_busy_port_is_a_clear_error() -> None:
    async with Simulator() as first:
        with pytest.raises(ChannelError, match="server cannot listen on .*already in use"):
            async with Simulator(smpp_port=first.smpp_port):
                pass


async def test_a_failed_part_reports_the_parts_already_accepted() -> None:
    async with Simulator() as sim:
        channel, _, _ = _channel(sim.smpp_port)
        await channel.start()
        # Given an SMSC connection that drops the link on the second submit it receives
        (conn,) = sim.smpp.connections
        accept = conn._submit
        seen: list = []

        def drop_on_second(message) -> None:  # noqa: ANN001
            seen.append(message)
            conn.close() if len(seen) == 2 else accept(message)

        conn._submit = drop_on_second
        # When a 3-part message is submitted, Then the error carries the one accepted id
        with pytest.raises(SubmitError) as info:
            await channel.submit(OutboundSms(destination=MSISDN, text="x" * 400))
        assert len(info.value.message_ids) == 1 and info.value.parts == 3 and info.value.unresolved
        await channel.close()

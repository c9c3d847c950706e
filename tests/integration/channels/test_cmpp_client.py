"""CmppChannel against the simulator's CMPP server over loopback.

Every await is bounded; ports are picked free by the OS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from jingxin.channels.cmpp import CmppChannel, CmppOptions, LinkOptions, msgid
from jingxin.channels.cmpp.results import SubmitError
from jingxin.domain.sms import DeliveryReceipt, MobileOriginated, OutboundSms, ReceiptStatus
from jingxin.errors import ChannelError, Retry
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.cmpp_server import CmppSmsc, start_cmpp_server
from jingxin.smsc.record import Record

SP, SECRET = "901234", "s3cret"
FAST = LinkOptions(
    window=16, connect_timeout=2, response_timeout=2, active_test_interval=5, terminate_timeout=0.5
)
CREDENTIALS = {SP: SECRET}


class Sim:
    def __init__(self, smsc: CmppSmsc, port: int, record: Record) -> None:
        self.smsc, self.port, self.record = smsc, port, record
        self.receipts: list[DeliveryReceipt] = []
        self.mos: list[MobileOriginated] = []

    def channel(self, *, sp: str = SP, secret: str = SECRET, **options: Any) -> CmppChannel:
        link = options.pop("link", FAST)
        return CmppChannel(
            name="cmpp-test", host="127.0.0.1", port=self.port, sp_id=sp, secret=secret,
            source_addr="10690000", options=CmppOptions(link=link, **options),
            on_receipt=self.receipts.append, on_mo=self.mos.append,
        )  # fmt: skip

    async def until(self, condition: Any, timeout: float = 3.0) -> None:
        async def poll() -> None:
            while not condition():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def simulator(behaviour: Behaviour | None = None) -> AsyncIterator[Sim]:
    record = Record()
    behaviour = behaviour or Behaviour(credentials=CREDENTIALS)
    server, smsc = await start_cmpp_server(host="127.0.0.1", port=0, behaviour=behaviour, record=record)
    try:
        yield Sim(smsc, server.sockets[0].getsockname()[1], record)
    finally:
        server.close()
        smsc.close()
        await asyncio.wait_for(server.wait_closed(), 2)


@asynccontextmanager
async def started(sim: Sim, **options: Any) -> AsyncIterator[CmppChannel]:
    channel = sim.channel(**options)
    await asyncio.wait_for(channel.start(), 3)
    try:
        yield channel
    finally:
        await asyncio.wait_for(channel.close(), 5)


async def test_connect_succeeds_with_the_right_secret() -> None:
    async with simulator() as sim, started(sim) as channel:
        (connect,) = sim.record.of("CMPP_CONNECT")
        assert (connect.system_id, connect.fields["status"], connect.fields["version"]) == (SP, 0, 0x20)
        assert channel.link is not None and channel.link.is_open


@pytest.mark.parametrize(
    ("sp", "secret", "words"),
    [
        (SP, "wrong", "Status 3 (authentication failed)"),
        ("999999", SECRET, "Status 2 (invalid source address)"),
    ],
)
async def test_connect_refusal_names_the_status(sp: str, secret: str, words: str) -> None:
    async with simulator() as sim:
        channel = sim.channel(sp=sp, secret=secret)
        with pytest.raises(ChannelError, match=words.replace("(", r"\(").replace(")", r"\)")):
            await asyncio.wait_for(channel.start(), 3)


async def test_unreachable_ismg_is_a_channel_error() -> None:
    async with simulator() as sim:
        port = sim.port
    channel = CmppChannel(name="x", host="127.0.0.1", port=port, sp_id=SP, secret=SECRET,
                          source_addr="1", options=CmppOptions(link=FAST))  # fmt: skip
    with pytest.raises(ChannelError, match="cannot reach"):
        await asyncio.wait_for(channel.start(), 3)


async def test_short_ascii_message_goes_as_msg_fmt_0() -> None:
    async with simulator() as sim, started(sim) as channel:
        result = await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "code 1234")), 3)
        (submit,) = sim.record.of("CMPP_SUBMIT")
        assert result.message_ids == (msgid.to_text(submit.fields["msg_id"]),)
        f = submit.fields
        assert (f["msg_fmt"], f["tp_udhi"], f["pk_total"], f["msg_content"]) == (0, 0, 1, b"code 1234")
        assert (f["msg_src"], f["src_id"], f["dest_terminal_ids"]) == (SP, "10690000", ["13800138000"])


async def test_long_chinese_message_goes_in_udh_parts() -> None:
    text = "尊敬的客户，您本月的流量已使用百分之八十。" * 8  # 168 characters
    async with simulator() as sim, started(sim) as channel:
        result = await asyncio.wait_for(channel.submit(OutboundSms("13800138000", text)), 3)
        submits = sim.record.of("CMPP_SUBMIT")
        assert result.parts == len(submits) == 3
        assert list(result.message_ids) == [msgid.to_text(s.fields["msg_id"]) for s in submits]
        ref = submits[0].fields["msg_content"][3]
        payload = b""
        for number, s in enumerate(submits, start=1):
            f = s.fields
            assert (f["msg_fmt"], f["tp_udhi"], f["pk_total"], f["pk_number"]) == (8, 1, 3, number)
            assert f["msg_content"][:6] == bytes((5, 0, 3, ref, 3, number))
            payload += f["msg_content"][6:]
        assert payload.decode("utf-16-be") == text


async def test_window_with_out_of_order_responses() -> None:
    async with simulator() as sim, started(sim, link=replace(FAST, window=4)) as channel:
        sim.smsc.reorder = 4  # the ISMG answers each batch of 4 in reverse order
        texts = [f"message {i}" for i in range(12)]
        results = await asyncio.wait_for(
            asyncio.gather(*(channel.submit(OutboundSms("13800138000", t)) for t in texts)), 5
        )
        by_content = {s.fields["msg_content"].decode(): msgid.to_text(s.fields["msg_id"])
                      for s in sim.record.of("CMPP_SUBMIT")}  # fmt: skip
        assert [r.message_ids[0] for r in results] == [by_content[t] for t in texts]


async def test_window_bounds_what_is_outstanding() -> None:
    async with simulator() as sim, started(sim, link=replace(FAST, window=3, response_timeout=0.3)) as channel:
        sim.smsc.silent = True  # the peer stops answering mid-window
        tasks = [asyncio.ensure_future(channel.submit(OutboundSms("1380000000", f"m{i}"))) for i in range(7)]
        await sim.until(lambda: len(sim.record.of("ignored")) >= 3)
        await asyncio.sleep(0.05)
        assert len(sim.record.of("ignored")) == 3  # only W requests went out
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        # Then every submit is resolved: each one reported unresolved, none hangs
        assert all(isinstance(o, ChannelError) and "unresolved" in str(o) for o in outcomes)


async def test_flow_control_backs_off_and_resubmits() -> None:
    behaviour = Behaviour(credentials=CREDENTIALS, tps=40)
    async with simulator(behaviour) as sim, started(sim, flow_control_backoff=0.02, flow_control_retries=8) as channel:
        results = await asyncio.wait_for(
            asyncio.gather(*(channel.submit(OutboundSms("13800138000", f"m{i}")) for i in range(20))), 5
        )
        assert sim.smsc.throttled > 0  # Result 8 was answered …
        assert len({r.message_ids[0] for r in results}) == 20  # … and every message got through
        assert len(sim.record.of("CMPP_SUBMIT")) == 20


async def test_flow_control_that_persists_raises_retry() -> None:
    behaviour = Behaviour(credentials=CREDENTIALS, tps=0.5)
    async with simulator(behaviour) as sim, started(sim, flow_control_backoff=0.01, flow_control_retries=2) as channel:
        await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "first")), 3)  # the one token
        with pytest.raises(Retry, match="Result 8") as caught:
            await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "second")), 3)
        assert caught.value.delay > 0


async def test_over_long_content_is_refused_by_the_ismg() -> None:
    async with simulator() as sim, started(sim) as channel:
        # Given a Msg_Fmt 0 content of 200 octets (the client never builds one: force it)
        from jingxin.channels.cmpp.pdu import Submit

        assert channel.link is not None
        response = await asyncio.wait_for(channel.link.request(Submit(("1",), b"x" * 200)), 3)
        assert response.result == 6  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("result", "meaning"),
    [(7, "bad service code"), (3, "duplicate sequence number"), (42, "other error")],
)
async def test_other_results_raise_submit_error_naming_the_code(result: int, meaning: str) -> None:
    async with simulator() as sim, started(sim) as channel:
        sim.smsc.force_result = result
        with pytest.raises(SubmitError, match=f"Result {result} \\({meaning}") as caught:
            await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "x")), 3)
        assert (caught.value.status, caught.value.unresolved) == (result, False)
        # And a long message reports which parts failed
        with pytest.raises(SubmitError, match="3 of 3 parts failed"):
            await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "长" * 150)), 3)


@pytest.mark.parametrize("before", [False, True])
async def test_status_reports_correlate_with_submits(before: bool) -> None:
    behaviour = Behaviour(credentials=CREDENTIALS, receipt_delay=0.01, receipt_before_response=before,
                          status_mix={"UNDELIV": 1.0})  # fmt: skip
    async with simulator(behaviour) as sim, started(sim) as channel:
        results = await asyncio.wait_for(
            asyncio.gather(*(channel.submit(OutboundSms(f"1380013800{i}", "hi")) for i in range(5))), 3
        )
        await sim.until(lambda: len(sim.receipts) == 5)
        ids = {r.message_ids[0]: f"1380013800{i}" for i, r in enumerate(results)}
        assert {r.message_id: r.destination for r in sim.receipts} == ids
        assert {r.status for r in sim.receipts} == {ReceiptStatus.UNDELIVERABLE}
        # And every DELIVER was acknowledged with its own Msg_Id and Result 0
        await sim.until(lambda: len(sim.record.of("CMPP_DELIVER_RESP")) == 5)
        acks = sim.record.of("CMPP_DELIVER_RESP")
        assert {a.fields["result"] for a in acks} == {0}
        assert all(str(a.fields["msg_id"]) not in ids for a in acks)  # the DELIVER's id, not the report's


@pytest.mark.parametrize("udhi", [0x01, 0x40])
async def test_long_mo_is_reassembled(udhi: int) -> None:
    text = "我想办理流量包，请问有什么优惠？" * 6
    async with simulator() as sim, started(sim) as channel:
        sim.smsc.mo_udhi = udhi
        parts = sim.smsc.inject_mo("13912345678", "106900001", text)
        sim.smsc.inject_mo("13912345678", "106900001", "TD")
        await sim.until(lambda: len(sim.mos) == 2)
        long_mo, short_mo = sim.mos
        assert (long_mo.source, long_mo.destination, long_mo.text) == ("13912345678", "106900001", text)
        assert long_mo.extra["parts"] == str(parts) and parts > 1
        assert short_mo.text == "TD"
        await sim.until(lambda: len(sim.record.of("CMPP_DELIVER_RESP")) == parts + 1)
        assert channel.link is not None


async def test_keepalive_both_ways() -> None:
    link = replace(FAST, active_test_interval=0.05)
    async with simulator() as sim, started(sim, link=link):
        # Given an idle link: we send ACTIVE_TEST
        await sim.until(lambda: len(sim.record.of("CMPP_ACTIVE_TEST")) >= 2)
        # And when the ISMG sends one, we answer it
        assert sim.smsc.active_test() == 1
        await sim.until(lambda: len(sim.record.of("CMPP_ACTIVE_TEST_RESP")) == 1)


async def test_dead_peer_is_detected_and_in_flight_submits_fail_unresolved() -> None:
    link = replace(FAST, active_test_interval=0.05, max_missed_active_tests=3, response_timeout=30)
    async with simulator() as sim, started(sim, link=link, reconnect=False) as channel:
        sim.smsc.silent = True
        pending = asyncio.ensure_future(channel.submit(OutboundSms("13800138000", "hello")))
        with pytest.raises(ChannelError, match="unresolved"):
            await asyncio.wait_for(pending, 2)
        assert channel.link is not None and not channel.link.is_open


async def test_terminate_both_ways() -> None:
    async with simulator() as sim:
        channel = sim.channel(reconnect_max=0.05)
        await asyncio.wait_for(channel.start(), 3)
        # When the ISMG terminates, we answer and the channel re-connects
        assert sim.smsc.terminate() == 1
        await sim.until(lambda: len(sim.record.of("CMPP_TERMINATE_RESP")) == 1)
        await sim.until(lambda: len(sim.record.of("CMPP_CONNECT")) == 2)
        await sim.until(lambda: channel.link is not None and channel.link.is_open)
        await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "after")), 3)
        # When we close, the ISMG sees CMPP_TERMINATE
        await asyncio.wait_for(channel.close(), 3)
        assert len(sim.record.of("CMPP_TERMINATE")) == 1
        with pytest.raises(ChannelError, match="not started, or closed"):
            await channel.submit(OutboundSms("13800138000", "too late"))


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        (Behaviour(credentials=CREDENTIALS, disconnect=1.0), "closed .* unresolved"),
        (Behaviour(credentials=CREDENTIALS, lose_response=1.0), "no response .* unresolved"),
    ],
)
async def test_lost_connection_or_response_is_unresolved(behaviour: Behaviour, words: str) -> None:
    link = replace(FAST, response_timeout=0.2)
    async with simulator(behaviour) as sim, started(sim, link=link, reconnect=False) as channel:
        with pytest.raises(SubmitError, match=words) as caught:
            await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "x")), 3)
        assert caught.value.unresolved


async def test_simulator_runner_starts_cmpp_and_routes_mo_to_it() -> None:
    from jingxin.smsc.server import Simulator

    # Given the simulator runner with only its CMPP server
    async with Simulator(behaviour=Behaviour(credentials=CREDENTIALS), smpp_port=None, cmpp_port=0) as runner:
        assert runner.cmpp_port is not None
        sim = Sim(runner.cmpp, runner.cmpp_port, runner.record)
        async with started(sim):
            # When an MO is injected through the runner / Then the CMPP client gets it
            assert runner.inject_mo(source="13912345678", destination="10690000", text="CX") == 1
            await sim.until(lambda: len(sim.mos) == 1)
            assert sim.mos[0].text == "CX"


async def test_sequence_ids_wrap_past_the_32_bit_limit() -> None:
    from jingxin.channels.cmpp.link import Link

    link = Link(peer="nowhere", options=FAST, on_request=lambda _link, _pdu: None)
    link._sequence = 0xFFFFFFFE
    assert [link.next_sequence() for _ in range(3)] == [0xFFFFFFFF, 1, 2]


async def test_a_destination_too_long_for_its_field_is_a_submit_error_not_a_crash() -> None:
    async with simulator() as sim, started(sim) as channel:
        with pytest.raises(SubmitError, match="Dest_terminal_Id") as caught:
            await asyncio.wait_for(channel.submit(OutboundSms("8" * 22, "x")), 3)
        assert not caught.value.unresolved
        assert sim.record.of("CMPP_SUBMIT") == []
        # And the window slot came back: the link still submits
        await asyncio.wait_for(channel.submit(OutboundSms("13800138000", "x")), 3)


@asynccontextmanager
async def one_shot_ismg(answer: bytes) -> AsyncIterator[int]:
    """A fake ISMG that reads the CONNECT and answers ``answer`` verbatim."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(39)
        writer.write(answer)
        await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        # A CMPP 3.0 ISMG: CONNECT_RESP with a 4-octet Status (Total_Length 33)
        ((33).to_bytes(4, "big") + bytes.fromhex("80000001 00000001") + bytes(21), "CMPP 3.0"),
        # Not CMPP at all
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not a CMPP 2.0 stream"),
    ],
)
async def test_a_peer_that_is_not_a_cmpp_2_ismg_is_named(answer: bytes, words: str) -> None:
    async with one_shot_ismg(answer) as port:
        channel = CmppChannel(name="x", host="127.0.0.1", port=port, sp_id=SP, secret=SECRET,
                              source_addr="1", options=CmppOptions(link=FAST))  # fmt: skip
        with pytest.raises(ChannelError, match=words):
            await asyncio.wait_for(channel.start(), 3)


async def test_flaky_ismg_every_submit_is_resolved_one_way_or_the_other() -> None:
    from jingxin.domain.sms import SubmitResult
    from jingxin.smsc.behaviour import preset

    # Given the "flaky" preset made harsher: lost responses and dropped connections
    behaviour = preset("flaky").with_(credentials=CREDENTIALS, lose_response=0.05, disconnect=0.02, seed=7)
    link = replace(FAST, response_timeout=0.3)
    async with simulator(behaviour) as sim, started(sim, link=link, reconnect_max=0.05) as channel:
        # When 200 messages are submitted through drops and re-connects
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(channel.submit(OutboundSms("13800138000", f"m{i}")) for i in range(200)),
                return_exceptions=True,
            ),
            20,
        )
    # Then each one ended as a result or a ChannelError (nothing hung, nothing else escaped)
    assert all(isinstance(o, SubmitResult | ChannelError) for o in outcomes), outcomes
    ok = [o for o in outcomes if isinstance(o, SubmitResult)]
    assert ok and len(ok) < 200
    assert len(sim.record.of("CMPP_CONNECT")) > 1  # it re-connected after drops

"""The ESME session against a fake transport (no sockets): matching, window, nacks, loss."""

from __future__ import annotations

import asyncio

import pytest
from smpp_fakes import FakeTransport

from jingxin.channels.smpp import codec
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp.session import SessionConfig, SmppSession, SubmitError
from jingxin.errors import Retry


async def _session(**config: object) -> tuple[SmppSession, FakeTransport, list]:
    delivered: list = []
    session = SmppSession(SessionConfig(**config), on_deliver=lambda pdu: delivered.append(pdu) or 0)
    transport = FakeTransport(session)
    session.connection_made(transport)
    return session, transport, delivered


async def _tick() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def _until_written(transport: FakeTransport, timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not transport.frames:
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


def _reply(session: SmppSession, message: p.Pdu) -> None:
    session.data_received(codec.encode(message))


async def test_responses_are_matched_by_sequence_in_any_order() -> None:
    session, transport, _ = await _session()
    # Given two submits in flight
    first = asyncio.create_task(session.submit_sm(destination_addr="1", short_message=b"a"))
    second = asyncio.create_task(session.submit_sm(destination_addr="2", short_message=b"b"))
    await _tick()
    a, b = transport.take()
    # When the SMSC answers the second one first
    _reply(session, p.SubmitSmResp(b.sequence_number, 0, "id-b"))
    _reply(session, p.SubmitSmResp(a.sequence_number, 0, "id-a"))
    # Then each submit gets its own message id
    assert await asyncio.wait_for(asyncio.gather(first, second), 1) == ["id-a", "id-b"]


async def test_window_limits_outstanding_submits() -> None:
    session, transport, _ = await _session(window=2)
    tasks = [asyncio.create_task(session.submit_sm(destination_addr="1")) for _ in range(3)]
    await _tick()
    sent = transport.take()
    assert len(sent) == 2  # the third waits for a slot
    _reply(session, p.SubmitSmResp(sent[0].sequence_number, 0, "x"))
    await _tick()
    assert len(transport.take()) == 1
    for task in tasks:
        task.cancel()


async def test_peer_requests_are_answered() -> None:
    session, transport, delivered = await _session()
    # enquire_link → resp; deliver_sm → handler + resp; unknown id → generic_nack(RINVCMDID)
    _reply(session, p.EnquireLink(11))
    _reply(session, p.DeliverSm(12, source_addr="8613800138000", short_message=b"41"))
    session.data_received(codec.HEADER.pack(16, 0x000000AA, 0, 13))
    await _tick()
    answers = transport.take()
    assert [(type(m), m.sequence_number, m.command_status) for m in answers] == [
        (p.EnquireLinkResp, 11, 0), (p.DeliverSmResp, 12, 0), (p.GenericNack, 13, 0x03)]  # fmt: skip
    assert delivered[0].short_message == b"41"


async def test_unbind_from_peer_is_answered_and_closes() -> None:
    session, transport, _ = await _session()
    _reply(session, p.Unbind(5))
    await _tick()
    assert transport.take() == [p.UnbindResp(5)]
    assert await session.wait_closed(1) == "the SMSC unbound"


async def test_connection_loss_fails_in_flight_submits_as_unresolved() -> None:
    session, transport, _ = await _session()
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    await _tick()
    session.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(SubmitError) as info:
        await asyncio.wait_for(task, 1)
    assert info.value.unresolved and "reset" in str(info.value)


async def test_throttled_submit_is_resubmitted_after_backoff() -> None:
    session, transport, _ = await _session(throttle_backoff=0.01)
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    await _tick()
    (first,) = transport.take()
    _reply(session, p.SubmitSmResp(first.sequence_number, 0x58))
    await _until_written(transport)
    (second,) = transport.take()
    assert second.sequence_number != first.sequence_number
    _reply(session, p.SubmitSmResp(second.sequence_number, 0, "ok"))
    assert await asyncio.wait_for(task, 1) == "ok"


async def test_throttling_is_bounded_then_retry() -> None:
    session, transport, _ = await _session(throttle_backoff=0.001, throttle_retries=2)
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    for _ in range(3):
        await _until_written(transport)
        (sent,) = transport.take()
        _reply(session, p.SubmitSmResp(sent.sequence_number, 0x14))
    with pytest.raises(Retry, match="ESME_RMSGQFUL"):
        await asyncio.wait_for(task, 1)


@pytest.mark.parametrize(("status", "text"), [(0x0B, "ESME_RINVDSTADR (0x0000000B)"), (0x45, "ESME_RSUBMITFAIL")])
async def test_permanent_errors_name_the_status(status: int, text: str) -> None:
    session, transport, _ = await _session()
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    await _tick()
    (sent,) = transport.take()
    _reply(session, p.SubmitSmResp(sent.sequence_number, status))
    with pytest.raises(SubmitError, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
        await asyncio.wait_for(task, 1)
    assert info.value.status == status and not info.value.unresolved


async def test_generic_nack_fails_the_matching_request() -> None:
    session, transport, _ = await _session()
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    await _tick()
    (sent,) = transport.take()
    _reply(session, p.GenericNack(sent.sequence_number, 0x03))
    with pytest.raises(SubmitError, match="ESME_RINVCMDID"):
        await asyncio.wait_for(task, 1)


async def test_a_broken_stream_is_nacked_and_closed() -> None:
    session, transport, _ = await _session()
    session.data_received(b"\xff\xff\xff\xff")
    await _tick()
    assert transport.take() == [p.GenericNack(0, 0x02)]
    assert "bad PDU stream" in await session.wait_closed(1)


async def test_no_response_in_time_is_unresolved() -> None:
    session, transport, _ = await _session(response_timeout=0.05)
    with pytest.raises(SubmitError, match="no response within") as info:
        await asyncio.wait_for(session.submit_sm(destination_addr="1"), 2)
    assert info.value.unresolved


async def test_a_field_that_does_not_fit_fails_without_sending() -> None:
    session, transport, _ = await _session()
    with pytest.raises(SubmitError, match="destination_addr") as info:
        await asyncio.wait_for(session.submit_sm(destination_addr="8" * 30), 1)
    assert not info.value.unresolved
    await _tick()
    assert transport.take() == [] and not session._pending


async def test_unbind_waits_for_submits_in_flight_then_says_goodbye() -> None:
    session, transport, _ = await _session()
    session.bound = True
    task = asyncio.create_task(session.submit_sm(destination_addr="1"))
    await _tick()
    (submit,) = transport.take()
    closing = asyncio.create_task(session.unbind())
    await asyncio.sleep(0.03)
    assert transport.take() == []  # no unbind while the submit is unanswered
    _reply(session, p.SubmitSmResp(submit.sequence_number, 0, "done"))
    assert await asyncio.wait_for(task, 1) == "done"
    await _until_written(transport)
    (unbind,) = transport.take()
    _reply(session, p.UnbindResp(unbind.sequence_number))
    await asyncio.wait_for(closing, 2)
    assert not session.is_open

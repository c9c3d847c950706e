"""OutboundSms → SUBMIT parts, DELIVER → receipt / MO text, UDH parsing, reassembly, window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.channels.cmpp import inbound, outbound
from jingxin.channels.cmpp.concatenation import Concat, Reassembler, concat_udh, split_udh
from jingxin.channels.cmpp.pdu import Deliver
from jingxin.channels.cmpp.report import StatusReport
from jingxin.channels.cmpp.window import Window
from jingxin.domain.sms import OutboundSms, ReceiptStatus
from jingxin.errors import ProtocolError

DEFAULTS = outbound.SubmitDefaults(sp_id="901234", src_id="10690000", service_id="JX001")


@pytest.mark.parametrize(
    ("text", "fmt", "parts"),
    [
        ("hello", 0, 1),
        ("x" * 159, 0, 1),  # Msg_Fmt 0 allows < 160 octets
        ("x" * 160, 8, 3),  # then UCS-2: 160 / 67 → 3 parts
        ("你好" * 35, 8, 1),  # 70 UCS-2 units fit one part
        ("你好" * 35 + "!", 8, 2),  # 71 need two of 67
        ("", 0, 1),
    ],
)
def test_encoding_and_part_count(text: str, fmt: int, parts: int) -> None:
    pdus = outbound.submits(OutboundSms("13800138000", text), defaults=DEFAULTS, reference=7)
    assert [x.msg_fmt for x in pdus] == [fmt] * parts
    assert [(x.pk_total, x.pk_number) for x in pdus] == [(parts, i) for i in range(1, parts + 1)]


@given(st.text(min_size=71, max_size=600).filter(lambda t: not t.isascii() or len(t) > 159))
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_long_parts_carry_udh_and_rebuild_the_text(text: str) -> None:
    # Given a message too long for one UCS-2 part (71+ UTF-16 units)
    pdus = outbound.submits(OutboundSms("13800138000", text), defaults=DEFAULTS, reference=300)
    # Then every part is UDH + ≤134 octets, TP_udhi=1, and the payloads rebuild the text
    assert len(pdus) >= 2
    payload = b""
    for number, pdu in enumerate(pdus, start=1):
        assert pdu.tp_udhi == 1
        assert pdu.msg_content[:6] == bytes((5, 0, 3, 300 & 0xFF, len(pdus), number))
        assert len(pdu.msg_content) <= 140
        payload += pdu.msg_content[6:]
    assert payload.decode("utf-16-be") == text


def test_submit_fields_come_from_message_and_defaults() -> None:
    message = OutboundSms("13800138000", "hi", source_addr="106900001234", registered_delivery=False,
                          validity_seconds=3 * 86400 + 3661, priority=12)  # fmt: skip
    (pdu,) = outbound.submits(message, defaults=DEFAULTS, reference=1)
    assert (pdu.src_id, pdu.msg_src, pdu.service_id) == ("106900001234", "901234", "JX001")
    assert (pdu.registered_delivery, pdu.msg_level, pdu.tp_udhi) == (0, 9, 0)
    assert pdu.valid_time == "000003010101000R"
    assert (pdu.fee_type, pdu.fee_code) == ("01", "000000")


def report_deliver(stat: str) -> Deliver:
    report = StatusReport(12345, stat, "2611231902", "2611231903", "13800138000", 1)
    return Deliver(1, "10690000", "13800138000", report.encode(), registered_delivery=1)


@pytest.mark.parametrize(
    ("stat", "status", "error"),
    [
        ("DELIVRD", ReceiptStatus.DELIVERED, None),
        ("UNDELIV", ReceiptStatus.UNDELIVERABLE, None),
        ("EXPIRED", ReceiptStatus.EXPIRED, None),
        ("MA:0054", ReceiptStatus.UNDELIVERABLE, "MA:0054"),  # the ISMG's own code
        ("ZZZ", ReceiptStatus.UNKNOWN, "ZZZ"),
    ],
)
def test_report_becomes_a_receipt(stat: str, status: ReceiptStatus, error: str | None) -> None:
    now = datetime.now(UTC)
    receipt = inbound.receipt(report_deliver(stat), received_at=now)
    assert (receipt.message_id, receipt.status, receipt.error_code) == ("12345", status, error)
    assert receipt.destination == "13800138000"
    assert receipt.submit_date is not None and receipt.submit_date.strftime("%y%m%d%H%M") == "2611231902"
    assert receipt.submit_date.utcoffset().total_seconds() == 8 * 3600  # Beijing time
    assert f"stat:{stat}" in receipt.raw


def test_bad_report_times_are_none_not_errors() -> None:
    assert inbound.report_time("99999999xx") is None


@pytest.mark.parametrize(
    ("payload", "fmt", "text", "binary"),
    [
        (b"hello", 0, "hello", False),
        ("你好".encode("utf-16-be"), 8, "你好", False),
        ("你好".encode("gbk"), 15, "你好", False),
        (b"\x01\xff", 4, "01ff", True),
        (b"\x00", 8, "\ufffd", False),  # odd UCS-2 octet: replaced, not a crash
    ],
)
def test_mo_text_decoding(payload: bytes, fmt: int, text: str, binary: bool) -> None:
    assert inbound.decode_text(payload, fmt) == (text, binary)


@pytest.mark.parametrize(
    ("content", "concat", "rest"),
    [
        (concat_udh(reference=9, total=3, number=2) + b"ab", Concat(9, 3, 2), b"ab"),
        (bytes((6, 8, 4, 1, 2, 3, 1)) + b"z", Concat(0x102, 3, 1), b"z"),
        (bytes((3, 0x24, 1, 0)) + b"q", None, b"q"),  # another element, no concatenation
    ],
)
def test_split_udh(content: bytes, concat: Concat | None, rest: bytes) -> None:
    assert split_udh(content) == (concat, rest)


@pytest.mark.parametrize("content", [b"", b"\x09\x00\x03", bytes((5, 0, 9, 1, 2, 3))])
def test_split_udh_refuses_overruns(content: bytes) -> None:
    with pytest.raises(ProtocolError):
        split_udh(content)


def test_reassembly_in_any_order_with_duplicates_and_expiry() -> None:
    now = [0.0]
    parts = Reassembler(ttl=10, clock=lambda: now[0])
    assert parts.add("a", Concat(1, 3, 3), b"C") is None
    assert parts.add("a", Concat(1, 3, 1), b"A") is None
    assert parts.add("b", Concat(1, 3, 2), b"x") is None  # another sender, same ref
    assert parts.add("a", Concat(1, 3, 1), b"A") is None  # duplicate
    assert parts.add("a", Concat(1, 3, 2), b"B") == [b"A", b"B", b"C"]
    now[0] = 11.0
    assert parts.add("c", Concat(2, 2, 1), b"1") is None
    assert parts.waiting == 1  # "b" expired
    assert parts.add("d", Concat(5, 1, 1), b"whole") == [b"whole"]


def test_reassembler_is_bounded() -> None:
    parts = Reassembler(max_groups=2)
    for sender in range(5):
        parts.add(sender, Concat(1, 2, 1), b"x")
    assert parts.waiting == 2


async def test_window_limits_and_fails_waiters() -> None:
    window = Window(2)
    await window.acquire()
    await window.acquire()
    waiter = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    assert not waiter.done() and window.in_use == 2
    window.release()
    await asyncio.wait_for(waiter, 1)
    late = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    window.fail(lambda: RuntimeError("link lost"))
    with pytest.raises(RuntimeError, match="link lost"):
        await asyncio.wait_for(late, 1)
    with pytest.raises(RuntimeError):
        await window.acquire()


async def test_window_cancelled_waiter_does_not_leak_a_slot() -> None:
    window = Window(1)
    await window.acquire()
    waiter = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    window.release()
    await asyncio.wait_for(window.acquire(), 1)

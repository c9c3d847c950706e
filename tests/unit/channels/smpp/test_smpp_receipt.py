"""Receipt text parsing (vendor variations), TLV preference, formatting."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp import receipt
from jingxin.domain.sms import ReceiptStatus

TEXTS = [
    # (text, id, stat, err, submit date)
    ("id:0123456789 sub:001 dlvrd:001 submit date:2611231910 done date:2611231911 stat:DELIVRD err:000 text:Hello",
     "0123456789", "DELIVRD", "000", datetime(2026, 11, 23, 19, 10)),
    ("id:7a3f sub:001 dlvrd:000 Submit date:261123191005 Done date:261123191106 Stat:UNDELIV Err:021 Text:x",
     "7a3f", "UNDELIV", "021", datetime(2026, 11, 23, 19, 10, 5)),
    ("ID:ABC stat:expired", "ABC", "expired", None, None),
    ("id:42 submit_date:2611231910 done_date:bad stat:REJECTD err:1", "42", "REJECTD", "1", datetime(2026, 11, 23, 19, 10)),
    ("garbage without fields", None, None, None, None),
    ("id:1 stat:DELIVRD text:id:999 stat:UNDELIV", "1", "DELIVRD", None, None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message_id", "stat", "err", "submitted"), TEXTS)
def test_receipt_text_variants(text, message_id, stat, err, submitted) -> None:  # noqa: ANN001
    parsed = receipt.parse_text(text)
    assert (parsed.message_id, parsed.stat, parsed.err, parsed.submit_date) == (message_id, stat, err, submitted)


@pytest.mark.parametrize(
    ("stat", "status"),
    [("DELIVRD", ReceiptStatus.DELIVERED), ("delivered", ReceiptStatus.DELIVERED), ("UNDELIV", ReceiptStatus.UNDELIVERABLE),
     ("REJECTD", ReceiptStatus.REJECTED), ("weird", ReceiptStatus.UNKNOWN), (None, ReceiptStatus.UNKNOWN)],
)  # fmt: skip
def test_status_words(stat, status) -> None:  # noqa: ANN001
    assert receipt.parse_status(stat) is status


def test_tlvs_win_over_the_text() -> None:
    # Given a receipt whose text disagrees with its TLVs
    pdu = p.DeliverSm(1, source_addr="8613800138000", esm_class=0x04,
                      short_message=b"id:999 stat:DELIVRD err:000",
                      tlvs={"receipted_message_id": "abc", "message_state": 5, "network_error_code": b"\x03\x00\x15"})  # fmt: skip
    # When parsed, Then the TLVs decide id, status and error
    result = receipt.from_deliver(pdu, received_at=datetime(2026, 1, 1))
    assert (result.message_id, result.status, result.error_code) == ("abc", ReceiptStatus.UNDELIVERABLE, "021")
    assert result.destination == "8613800138000"


@pytest.mark.parametrize(("text_id", "fmt", "expected"), [("255", "dec-to-hex", "ff"), ("ff", "hex-to-dec", "255"),
                                                          ("zz", "hex-to-dec", "zz"), ("12", "as-is", "12")])  # fmt: skip
def test_id_conversion_for_smscs_that_change_base(text_id: str, fmt, expected: str) -> None:  # noqa: ANN001
    pdu = p.DeliverSm(1, esm_class=0x04, short_message=f"id:{text_id} stat:DELIVRD".encode())
    assert receipt.from_deliver(pdu, received_at=datetime(2026, 1, 1), id_format=fmt).message_id == expected


def test_formatted_receipt_parses_back() -> None:
    when = datetime(2026, 11, 23, 19, 10)
    text = receipt.format_text(message_id="a1", status=ReceiptStatus.EXPIRED, submit_date=when, done_date=when,
                               error=3, text="x" * 30)  # fmt: skip
    parsed = receipt.parse_text(text)
    assert (parsed.message_id, parsed.stat, parsed.err, parsed.done_date, parsed.text) == ("a1", "EXPIRED", "003", when, "x" * 20)


@pytest.mark.parametrize(("esm_class", "expected"), [(0x04, True), (0x44, True), (0x20, True), (0x00, False), (0x40, False), (0x08, False)])
def test_receipt_bit(esm_class: int, expected: bool) -> None:
    assert receipt.is_receipt(esm_class) is expected


@settings(max_examples=200, deadline=None)
@given(
    hs.text("0123456789abcdefABCDEF", min_size=1, max_size=20),
    hs.sampled_from(["DELIVRD", "UNDELIV", "expired"]),
    hs.from_regex(r"\A[0-9]{10}(?:[0-9]{2})?\Z"),
    hs.one_of(hs.none(), hs.text(hs.characters(min_codepoint=32, max_codepoint=0x24F), max_size=20)),
)
def test_canonical_fast_path_agrees_with_the_tolerant_parser(message_id: str, stat: str, date: str, text: str | None) -> None:
    raw = f"id:{message_id} sub:001 dlvrd:000 submit date:{date} done date:{date} stat:{stat} err:000"
    raw += "" if text is None else f" text:{text}"
    assert receipt.parse_text(raw) == receipt.parse_text_tolerant(raw)

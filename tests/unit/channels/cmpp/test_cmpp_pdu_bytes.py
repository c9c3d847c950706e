"""Byte-exact CMPP 2.0 PDUs, built by hand from the layouts of PROTOCOLS.md §3."""

from __future__ import annotations

import hashlib

import pytest

from jingxin.channels.cmpp import auth
from jingxin.channels.cmpp import pdu as p
from jingxin.channels.cmpp.report import StatusReport
from jingxin.errors import ProtocolError


def header(total: int, command: int, seq: int) -> bytes:
    return total.to_bytes(4, "big") + command.to_bytes(4, "big") + seq.to_bytes(4, "big")


def pad(text: str, width: int) -> bytes:
    return text.encode("ascii") + b"\0" * (width - len(text))


# MD5("901234" + 9 NULs + "secret" + "0102150405"), computed outside Python with md5sum.
CONNECT_AUTH = bytes.fromhex("6f35f197fd59d66683a050010cf38011")

SUBMIT_BODY = (
    bytes(8)  # Msg_Id 0
    + b"\x02\x01"  # Pk_total 2, Pk_number 1
    + b"\x01"  # Registered_Delivery
    + b"\x03"  # Msg_level
    + pad("JX001", 10)  # Service_Id
    + b"\x02"  # Fee_UserType
    + pad("", 21)  # Fee_terminal_Id
    + b"\x00\x01\x08"  # TP_pId, TP_udhi, Msg_Fmt 8
    + pad("901234", 6)  # Msg_src
    + b"01"  # FeeType
    + b"000000"  # FeeCode
    + pad("", 17)  # ValId_Time
    + pad("", 17)  # At_Time
    + pad("106900001", 21)  # Src_Id
    + b"\x01"  # DestUsr_tl
    + pad("13800138000", 21)  # Dest_terminal_Id
    + b"\x0a"  # Msg_Length 10
    + b"\x05\x00\x03\x2a\x02\x01" + "你好".encode("utf-16-be")
    + bytes(8)  # Reserve
)
SUBMIT = p.Submit(
    dest_terminal_ids=("13800138000",),
    msg_content=b"\x05\x00\x03\x2a\x02\x01" + "你好".encode("utf-16-be"),
    pk_total=2, pk_number=1, registered_delivery=1, msg_level=3, service_id="JX001",
    fee_user_type=2, tp_udhi=1, msg_fmt=8, msg_src="901234", src_id="106900001",
    sequence_id=7,
)  # fmt: skip

REPORT = (
    (0x1234567890ABCDEF).to_bytes(8, "big") + b"DELIVRD" + b"2611231902" + b"2611231903"
    + pad("13800138000", 21) + (9).to_bytes(4, "big")
)  # fmt: skip
DELIVER_BODY = (
    (77).to_bytes(8, "big") + pad("106900001", 21) + pad("JX001", 10) + b"\x00\x00\x00"
    + pad("13800138000", 21) + b"\x01" + bytes([len(REPORT)]) + REPORT + bytes(8)
)  # fmt: skip

CASES = [
    # (name, PDU, expected bytes)
    (
        "CONNECT",
        p.Connect("901234", CONNECT_AUTH, 102150405, 0x20, 1),
        header(39, 1, 1) + b"901234" + CONNECT_AUTH + b"\x20" + (102150405).to_bytes(4, "big"),
    ),
    (
        "CONNECT_RESP",
        p.ConnectResp(3, bytes(16), 0x20, 1),
        header(30, 0x80000001, 1) + b"\x03" + bytes(16) + b"\x20",
    ),
    ("SUBMIT", SUBMIT, header(12 + len(SUBMIT_BODY), 4, 7) + SUBMIT_BODY),
    (
        "SUBMIT_RESP",
        p.SubmitResp(0x0102030405060708, 8, 7),
        header(21, 0x80000004, 7) + bytes.fromhex("0102030405060708") + b"\x08",
    ),
    (
        "DELIVER report",
        p.Deliver(77, "106900001", "13800138000", REPORT, 1, "JX001", sequence_id=5),
        header(145, 5, 5) + DELIVER_BODY,
    ),
    ("DELIVER_RESP", p.DeliverResp(77, 0, 5), header(21, 0x80000005, 5) + (77).to_bytes(8, "big") + b"\0"),
    ("ACTIVE_TEST", p.ActiveTest(9), header(12, 8, 9)),
    ("ACTIVE_TEST_RESP", p.ActiveTestResp(0, 9), header(13, 0x80000008, 9) + b"\0"),
    ("TERMINATE", p.Terminate(3), header(12, 2, 3)),
    ("TERMINATE_RESP", p.TerminateResp(3), header(12, 0x80000002, 3)),
    (
        "QUERY",
        p.Query("20261123", 1, "JX001", "", 4),
        header(39, 6, 4) + b"20261123" + b"\x01" + pad("JX001", 10) + bytes(8),
    ),
    ("CANCEL", p.Cancel(77, 4), header(20, 7, 4) + (77).to_bytes(8, "big")),
    ("CANCEL_RESP", p.CancelResp(1, 4), header(16, 0x80000007, 4) + (1).to_bytes(4, "big")),
]


@pytest.mark.parametrize(("name", "pdu", "wire"), CASES, ids=[c[0] for c in CASES])
def test_encode_and_decode_are_byte_exact(name: str, pdu: p.Pdu, wire: bytes) -> None:
    # Given a PDU built from the spec layout / When encoded and decoded / Then bytes match
    assert p.encode(pdu) == wire
    assert p.decode(wire) == pdu


def test_submit_total_length_follows_the_formula() -> None:
    # §3.5: Total_Length = 138 + 21·N + L
    assert len(p.encode(SUBMIT)) == 138 + 21 * 1 + 10


def test_connect_authenticator_matches_the_spec_formula() -> None:
    # Given the SP's clock at 01-02 15:04:05
    from datetime import datetime

    stamp = auth.timestamp(datetime(2026, 1, 2, 15, 4, 5))
    # Then the timestamp is the integer 0102150405 and the MD5 is the known one
    assert stamp == 102150405
    assert auth.authenticator_source(source_addr="901234", secret="secret", timestamp=stamp) == CONNECT_AUTH
    assert auth.source_matches(
        authenticator=CONNECT_AUTH, source_addr="901234", secret="secret", timestamp=stamp
    )
    assert not auth.source_matches(
        authenticator=CONNECT_AUTH, source_addr="901234", secret="Secret", timestamp=stamp
    )


def test_second_known_authenticator() -> None:
    vector = bytes.fromhex("faf8005241c163f75dda118897cbcb02")  # md5sum of the same layout
    assert auth.authenticator_source(source_addr="901234", secret="secret", timestamp=1022083405) == vector


@pytest.mark.parametrize("width", [1, 4])
def test_ismg_authenticator_accepted_with_either_status_width(width: int) -> None:
    # §3.4 disagreement: gocmpp hashes 1 status octet, SMSGate 4
    ismg = hashlib.md5(bytes(width) + CONNECT_AUTH + b"secret").digest()
    assert auth.ismg_matches(authenticator=ismg, status=0, authenticator_source=CONNECT_AUTH, secret="secret")
    assert not auth.ismg_matches(authenticator=ismg, status=0, authenticator_source=CONNECT_AUTH, secret="x")


def test_status_report_is_60_octets() -> None:
    report = StatusReport.decode(REPORT)
    assert report == StatusReport(0x1234567890ABCDEF, "DELIVRD", "2611231902", "2611231903", "13800138000", 9)
    assert report.encode() == REPORT


BAD = [
    # (why, bytes, words the error must contain)
    ("shorter than a header", b"\x00\x00\x00", "shorter than the 12-octet header"),
    ("Total_Length lies", header(40, 8, 1), "Total_Length 40"),
    ("unknown command", header(12, 0x03, 1), "unknown Command_Id 0x00000003"),
    ("CONNECT too short", header(38, 1, 1) + bytes(26), "CONNECT body is 26"),
    ("3.0 CONNECT_RESP", header(33, 0x80000001, 1) + bytes(21), "CMPP 3.0"),
    ("SUBMIT_RESP 3.0 size", header(24, 0x80000004, 1) + bytes(12), "SUBMIT_RESP body is 12"),
    ("ACTIVE_TEST with body", header(13, 8, 1) + b"\0", "ACTIVE_TEST body is 1"),
    ("SUBMIT tiny", header(20, 4, 1) + bytes(8), "SUBMIT body is 8"),
    (
        "SUBMIT Msg_Length beyond body",
        header(12 + len(SUBMIT_BODY), 4, 1) + SUBMIT_BODY.replace(b"\x0a\x05\x00\x03", b"\xff\x05\x00\x03"),
        "Msg_Length 255",
    ),
    (
        "SUBMIT no destinations",
        header(12 + len(SUBMIT_BODY), 4, 1) + SUBMIT_BODY[:116] + b"\x00" + SUBMIT_BODY[117:],
        "DestUsr_tl 0",
    ),
    (
        "DELIVER Msg_Length beyond body",
        header(145, 5, 1) + DELIVER_BODY[:64] + b"\x64" + DELIVER_BODY[65:],
        "DELIVER Msg_Length 100",
    ),
]


@pytest.mark.parametrize(("why", "wire", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_pdus_raise_protocol_error_saying_why(why: str, wire: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words.replace("(", r"\(")):
        p.decode(wire)


@pytest.mark.parametrize(
    ("pdu", "words"),
    [
        (p.Submit(("1" * 22,), b"x"), "Dest_terminal_Id"),
        (p.Submit((), b"x"), "DestUsr_tl 0"),
        (p.Submit(("1",), b"x" * 256), "256 octets"),
        (p.Submit(("1",), b"x", service_id="服务"), "Service_Id"),
        (p.Submit(("1",), b"x", pk_total=300), "out of range"),
        (p.Connect("1234567", bytes(16), 0), "Source_Addr"),
    ],
)
def test_encode_refuses_values_that_do_not_fit(pdu: p.Pdu, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        p.encode(pdu)


def test_status_report_of_wrong_size_is_refused() -> None:
    with pytest.raises(ProtocolError, match="71 octets"):
        StatusReport.decode(bytes(71))  # a CMPP 3.0 report

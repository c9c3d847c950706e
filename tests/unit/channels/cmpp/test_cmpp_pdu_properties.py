"""Invariants of the CMPP codec: every PDU round-trips, the decoder is total, the framer
does not care how TCP cuts the stream."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.channels.cmpp import pdu as p
from jingxin.channels.cmpp.fields import MAX_PDU_LENGTH
from jingxin.channels.cmpp.framer import Framer
from jingxin.channels.cmpp.report import StatusReport
from jingxin.errors import ProtocolError

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)


def octet_text(width: int) -> st.SearchStrategy[str]:
    # No NUL inside: on the wire a NUL ends an Octet String.
    return st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=width)


submits = st.builds(
    p.Submit,
    dest_terminal_ids=st.lists(octet_text(21), min_size=1, max_size=5).map(tuple),
    msg_content=st.binary(max_size=255), msg_id=u64, pk_total=u8, pk_number=u8,
    registered_delivery=u8, msg_level=u8, service_id=octet_text(10), fee_user_type=u8,
    fee_terminal_id=octet_text(21), tp_pid=u8, tp_udhi=u8, msg_fmt=u8, msg_src=octet_text(6),
    fee_type=octet_text(2), fee_code=octet_text(6), valid_time=octet_text(17),
    at_time=octet_text(17), src_id=octet_text(21), reserve=st.binary(min_size=8, max_size=8),
    sequence_id=u32,
)  # fmt: skip
delivers = st.builds(
    p.Deliver,
    msg_id=u64, dest_id=octet_text(21), src_terminal_id=octet_text(21),
    msg_content=st.binary(max_size=255), registered_delivery=u8, service_id=octet_text(10),
    tp_pid=u8, tp_udhi=u8, msg_fmt=u8, reserved=st.binary(min_size=8, max_size=8), sequence_id=u32,
)  # fmt: skip
any_pdu = st.one_of(
    st.builds(p.Connect, octet_text(6), st.binary(min_size=16, max_size=16), u32, u8, u32),
    st.builds(p.ConnectResp, u8, st.binary(min_size=16, max_size=16), u8, u32),
    st.builds(p.Terminate, u32),
    st.builds(p.TerminateResp, u32),
    st.builds(p.ActiveTest, u32),
    st.builds(p.ActiveTestResp, u8, u32),
    submits,
    st.builds(p.SubmitResp, u64, u8, u32),
    delivers,
    st.builds(p.DeliverResp, u64, u8, u32),
    st.builds(p.Query, octet_text(8), u8, octet_text(10), octet_text(8), u32),
    st.builds(p.QueryResp, octet_text(8), u8, octet_text(10), st.tuples(*[u32] * 8), u32),
    st.builds(p.Cancel, u64, u32),
    st.builds(p.CancelResp, u32, u32),
)


@given(any_pdu)
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_every_pdu_round_trips(pdu: p.Pdu) -> None:
    wire = p.encode(pdu)
    assert int.from_bytes(wire[:4], "big") == len(wire) <= MAX_PDU_LENGTH
    assert p.decode(wire) == pdu


@given(st.builds(StatusReport, u64, octet_text(7), octet_text(10), octet_text(10), octet_text(21), u32))
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_status_report_round_trips(report: StatusReport) -> None:
    assert StatusReport.decode(report.encode()) == report


@given(st.binary(max_size=400))
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_decoder_is_total_on_random_bytes(data: bytes) -> None:
    try:
        p.decode(data)
    except ProtocolError as exc:
        assert str(exc)


@given(any_pdu, st.data())
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_decoder_is_total_on_mutated_pdus(pdu: p.Pdu, data: st.DataObject) -> None:
    # Given a valid PDU with some octets changed, the header kept consistent or not
    wire = bytearray(p.encode(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(u8)
    try:
        p.decode(bytes(wire))
    except ProtocolError as exc:
        assert str(exc)


@given(st.lists(any_pdu, min_size=1, max_size=6), st.data())
@settings(max_examples=50, deadline=None)
def test_framer_reassembles_any_segmentation(pdus: list[p.Pdu], data: st.DataObject) -> None:
    stream = b"".join(p.encode(x) for x in pdus)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer, out, start = Framer(), [], 0
    for cut in [*cuts, len(stream)]:
        out.extend(framer.feed(stream[start:cut]))
        start = cut
    assert out == pdus
    assert framer.pending == 0


@given(st.binary(max_size=300))
@settings(deadline=None)  # a loaded CI machine must not make these flaky
def test_framer_is_total_on_random_streams(data: bytes) -> None:
    try:
        Framer().feed(data)
    except ProtocolError as exc:
        assert str(exc)


def test_framer_refuses_absurd_length_before_waiting_for_it() -> None:
    # Given only a 4-octet Total_Length claiming 1 GB
    framer = Framer()
    try:
        framer.feed((1 << 30).to_bytes(4, "big"))
    except ProtocolError as exc:
        assert "Total_Length 1073741824" in str(exc)
    else:
        raise AssertionError("an absurd Total_Length was accepted")
    # And a length under the header size is refused too
    try:
        Framer().feed((11).to_bytes(4, "big"))
    except ProtocolError as exc:
        assert "Total_Length 11" in str(exc)
    else:
        raise AssertionError("Total_Length 11 was accepted")

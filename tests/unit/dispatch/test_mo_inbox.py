"""The MO inbox at the store: parts stored once, reassembled in any order, decoded, and
bad input (undecodable, orphan parts, lying headers) stored and marked, never dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from mo_parts import T0, cmpp_parts, smpp_parts
from sqlalchemy import func, select

from jingxin.data.store.models import MoMessage, MoPartRow
from jingxin.dispatch.mo_inbox import InboxRules, store_parts
from jingxin.domain.sms import MoPart

RULES = InboxRules(part_timeout=timedelta(seconds=60), duplicate_window=timedelta(seconds=600))
LONG_ZH = "您好，我想咨询一下本月流量套餐的变更事宜，" * 7  # UCS-2, 3 parts
LONG_EN = "Please call me back about the broadband offer you sent yesterday. " * 4  # GSM-7


def put(store, parts, *, channel="sim", now=T0 + timedelta(seconds=1)):
    with store.engine.begin() as conn:
        return store_parts(conn, items=[(channel, p) for p in parts], now=now, rules=RULES)


def messages(store) -> list[MoMessage]:
    with store.sessions() as session:
        return list(session.scalars(select(MoMessage).order_by(MoMessage.id)))


def part_rows(store) -> int:
    with store.sessions() as session:
        return session.execute(select(func.count()).select_from(MoPartRow)).scalar_one()


def test_a_short_mo_becomes_one_decoded_message_in_the_same_commit(store) -> None:
    # Given one GSM-7 deliver_sm from a mainland number
    tally = put(store, smpp_parts("TD"))
    # Then its message is written at once, decoded, the sender normalised
    [mo] = messages(store)
    assert (mo.text, mo.msisdn, mo.service_number, mo.complete, mo.parts) == (
        "TD", "+8613800000001", "10690001", True, 1)
    assert tally.stored == 1 and [a.mo_id for a in tally.assembled] == [mo.id]


def test_long_messages_out_of_order_and_interleaved_are_reassembled(store) -> None:
    # Given two long MO (UCS-2 over SMPP, GSM-7 over SMPP) whose parts arrive shuffled
    zh = smpp_parts(LONG_ZH, ref=1)
    en = smpp_parts(LONG_EN, source="8613700000003", ref=1)
    assert len(zh) == 3 and len(en) == 2
    put(store, [zh[2], en[1]])
    assert messages(store) == []  # nothing is whole yet
    put(store, [zh[0]])
    # When the last parts arrive
    put(store, [en[0], zh[1]])
    # Then each is one message with its whole text
    texts = {m.msisdn: (m.text, m.parts, m.complete) for m in messages(store)}
    assert texts == {"+8613800000001": (LONG_ZH, 3, True), "+8613700000003": (LONG_EN, 2, True)}


def test_a_redelivered_pdu_is_stored_once(store) -> None:
    # Given a long CMPP MO stored, then delivered again after a re-bind (same Msg_Ids)
    parts = cmpp_parts(LONG_ZH)
    put(store, parts)
    tally = put(store, parts)
    # Then nothing new is stored and it is still one message
    assert tally.duplicates == len(parts) and tally.stored == 0
    assert part_rows(store) == len(parts) and len(messages(store)) == 1


def test_without_an_smsc_id_the_same_pdu_within_the_window_is_a_redelivery(store) -> None:
    # Given an SMPP MO (no SMSC id), then the identical PDU 30 s later, then 20 min later
    put(store, smpp_parts("hello"))
    again = put(store, smpp_parts("hello", at=T0 + timedelta(seconds=30)))
    later = put(store, smpp_parts("hello", at=T0 + timedelta(minutes=20)),
                now=T0 + timedelta(minutes=20))  # fmt: skip
    # Then the first repeat is a duplicate, the late one a new message
    assert (again.duplicates, later.stored) == (1, 1)
    assert len(messages(store)) == 2


def test_a_part_whose_siblings_never_come_is_stored_incomplete_after_the_timeout(store) -> None:
    # Given parts 1 and 3 of a three-part MO
    parts = smpp_parts(LONG_ZH)
    put(store, [parts[0], parts[2]])
    # When the part timeout has not passed, nothing is written; when it has, what came is
    assert put(store, [], now=T0 + timedelta(seconds=30)).assembled == []
    tally = put(store, [], now=T0 + timedelta(seconds=61))
    [mo] = messages(store)
    assert (mo.complete, mo.parts, mo.parts_expected) == (False, 2, 3)
    assert [a.complete for a in tally.assembled] == [False]
    # And a sibling straggling in later is not lost: once its own wait is over it is a
    # fragment of its own (incomplete), the first message untouched
    put(store, [parts[1]], now=T0 + timedelta(seconds=62))
    first, late = messages(store)
    assert (first.parts, late.parts, late.complete) == (2, 1, False)


def test_a_header_that_lies_about_the_part_count_expires_with_what_came(store) -> None:
    # Given two parts claiming 4 parts in all, one of them sent twice with other bytes
    base = smpp_parts(LONG_EN)
    lying = [MoPart(**{**_fields(p), "total": 4}) for p in base]
    twin = MoPart(**{**_fields(lying[0]), "payload": b"XX"})
    put(store, [*lying, twin])
    # When the timeout passes, one incomplete message keeps the first copy of each part
    put(store, [], now=T0 + timedelta(minutes=5))
    [mo] = messages(store)
    assert (mo.complete, mo.parts, mo.parts_expected, mo.text) == (False, 2, 4, LONG_EN)


@pytest.mark.parametrize(
    ("part", "text", "undecodable"),
    [
        (MoPart("smpp", "8613800000001", "1069", 0x04, b"\x01\x02\xff", T0), "0102ff", True),
        (MoPart("smpp", "8613800000001", "1069", 0x08, b"\x4f\x60\x59", T0), "4f6059", True),
        (MoPart("cmpp", "8613800000001", "1069", 15, b"\xff\xfe\x80", T0, smsc_id="1"), "fffe80", True),
        (MoPart("cmpp", "8613800000001", "1069", 15, "查话费".encode("gbk"), T0, smsc_id="2"), "查话费", False),
        (MoPart("cmpp", "8613800000001", "1069", 4, b"\x00\x01", T0, smsc_id="3"), "0001", True),
        (MoPart("smpp", "8613800000001", "1069", 0x00, b"\x48\x69\x00", T0), "Hi@", False),
    ],
)
def test_payloads_are_decoded_or_kept_as_hex(store, part, text, undecodable) -> None:
    # Given one MO in a coding of its own / When stored
    tally = put(store, [part])
    # Then its text is decoded, or the payload as hex marked undecodable
    [mo] = messages(store)
    assert (mo.text, mo.undecodable) == (text, undecodable)
    assert tally.assembled[0].undecodable is undecodable


def test_a_sender_that_does_not_normalise_is_kept_as_received(store) -> None:
    put(store, smpp_parts("hi", source="ALPHA-ID"))
    assert messages(store)[0].msisdn == "ALPHA-ID"


def test_gbk_long_over_cmpp_and_a_gbk_single(store) -> None:
    # Given a GBK single (Msg_Fmt 15) and a UCS-2 long one with TP_udhi, interleaved
    single = cmpp_parts("查询余额", gbk=True, ref=5, source="8613900000009")
    long_ = cmpp_parts(LONG_ZH, ref=6)
    put(store, [long_[1], *single, long_[0], *long_[2:]])
    texts = sorted(m.text for m in messages(store))
    assert texts == sorted(["查询余额", LONG_ZH])


def _fields(part: MoPart) -> dict:
    return {name: getattr(part, name) for name in MoPart.__dataclass_fields__}

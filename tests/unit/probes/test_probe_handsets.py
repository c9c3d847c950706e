"""The simulator's handsets: what each number was sent, joined and decoded, after a cursor;
and ``GET /mt`` serving them (the road back for a dial test)."""

from __future__ import annotations

import asyncio

import pytest

from jingxin.channels.cmpp.concatenation import concat_udh
from jingxin.channels.smpp import short_message
from jingxin.errors import ChannelError
from jingxin.smsc.mo import get_mt, post_mo
from jingxin.smsc.record import Handsets, Record, number_key


def smpp_submit(record: Record, to: str, text: str, *, ref: int = 1, sender: str = "10086") -> int:
    """What the SMPP server records for each part of ``text``; returns the parts."""
    parts = short_message.parts(text, ref=ref)
    for seq, part in enumerate(parts, start=1):
        record.add("smpp", "jingxin", "submit_sm", seq, source_addr=sender, destination_addr=to,
                   data_coding=part.data_coding, esm_class=part.esm_class, short_message=part.short_message,
                   tlvs=part.tlvs)  # fmt: skip
    return len(parts)


@pytest.mark.parametrize(("address", "key"), [
    ("+8613900000001", "13900000001"), ("8613900000001", "13900000001"),
    ("008613900000001", "13900000001"), ("13900000001", "13900000001"), ("10086", "10086"),
])  # fmt: skip
def test_the_forms_of_one_number_share_a_handset(address, key) -> None:
    assert number_key(address) == key


def test_a_long_reply_is_shown_whole_once_its_last_part_came() -> None:
    # Given a three-part UCS-2 reply to a number written without '+', and a short one before
    record = Record()
    smpp_submit(record, "13900000001", "短信营业厅菜单")
    cursor = record.handsets.cursor
    text = "尊敬的客户，您的套餐余量如下：" * 10  # 150 UCS-2 characters
    assert smpp_submit(record, "8613900000001", text, ref=9) == 3
    # When the E.164 number asks for what came after the first reply
    [message] = record.handsets.messages("+8613900000001", after=cursor)
    # Then it is the long reply, joined and decoded, its seq that of its last part
    assert (message.text, message.parts, message.sender) == (text, 3, "10086")
    assert message.seq == record.handsets.cursor == cursor + 3
    assert record.handsets.messages("13900000001", after=message.seq) == []


def test_a_message_missing_a_part_is_not_shown() -> None:
    record = Record()
    parts = short_message.parts("流" * 150, ref=4)
    part = parts[0]
    record.add("smpp", "j", "submit_sm", 1, source_addr="10086", destination_addr="13900000001",
               data_coding=part.data_coding, esm_class=part.esm_class, short_message=part.short_message,
               tlvs={})  # fmt: skip
    assert record.handsets.messages("13900000001") == []


def test_cmpp_submits_reach_every_destination_decoded() -> None:
    # Given a two-part GBK CMPP submit to two numbers
    record = Record()
    halves = ["您的余额".encode("gbk"), "为12元".encode("gbk")]
    for number, half in enumerate(halves, start=1):
        record.add("cmpp", "901234", "CMPP_SUBMIT", number, src_id="1069012345",
                   dest_terminal_ids=["13900000001", "13900000002"], msg_fmt=15, tp_udhi=1,
                   msg_content=concat_udh(reference=3, total=2, number=number) + half)  # fmt: skip
    # Then both numbers see one whole message
    for number in ("+8613900000001", "13900000002"):
        [message] = record.handsets.messages(number)
        assert (message.text, message.parts, message.sender) == ("您的余额为12元", 2, "1069012345")


def test_memory_is_bounded_per_number_and_in_numbers() -> None:
    record = Record(handsets=Handsets(per_number=3, numbers=2))
    for i in range(5):
        smpp_submit(record, "13900000001", f"reply {i}")
    smpp_submit(record, "13900000002", "x")
    smpp_submit(record, "13900000003", "y")  # pushes out the least recently sent number
    assert record.handsets.messages("13900000001") == []
    assert [m.text for m in record.handsets.messages("13900000002")] == ["x"]
    record = Record(handsets=Handsets(per_number=3))
    for i in range(5):
        smpp_submit(record, "13900000001", f"reply {i}")
    assert [m.text for m in record.handsets.messages("13900000001")] == ["reply 2", "reply 3", "reply 4"]


async def test_get_mt_waits_for_the_reply_after_the_mo_cursor() -> None:
    from jingxin.smsc.server import Simulator

    async with Simulator(http_port=0) as sim:
        url = f"http://127.0.0.1:{sim.http_port}"
        smpp_submit(sim.record, "13900000001", "old reply")
        # Given a reply that arrives 0.2 s after a reader started waiting past the cursor
        cursor = sim.record.handsets.cursor
        asyncio.get_running_loop().call_later(0.2, smpp_submit, sim.record, "13900000001", "您的余额12元")
        answer = await asyncio.to_thread(get_mt, url, to="+8613900000001", after=cursor, wait=3)
        # Then the wait ends with only the new reply
        assert [m["text"] for m in answer["messages"]] == ["您的余额12元"]
        assert answer["cursor"] == cursor + 1
        # And a request without a number is refused with the reason
        with pytest.raises(ChannelError, match=r"\(400\).*needs \?to="):
            await asyncio.to_thread(get_mt, url, to="")


async def test_post_mo_answers_the_cursor_to_read_replies_after() -> None:
    from probe_fakes import FakeHall

    from jingxin.smsc.server import Simulator

    async with Simulator(http_port=0) as sim, FakeHall(sim.smpp_port):
        url = f"http://127.0.0.1:{sim.http_port}"
        smpp_submit(sim.record, "13900000001", "before")
        answer = await asyncio.to_thread(post_mo, url, source="+8613900000001", destination="10086",
                                         text="CXYE")  # fmt: skip
        # (the cursor when the MO went in: the hall may have answered already, moving it on)
        assert answer["delivered"] and answer["cursor"] == 1
        reply = await asyncio.to_thread(get_mt, url, to="13900000001", after=answer["cursor"], wait=3)
        assert [m["text"] for m in reply["messages"]] == ["【中国移动】您的余额12元。"]

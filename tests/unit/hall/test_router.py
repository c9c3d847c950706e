"""The hall's command router: a table of texts and the commands they are read as, and
properties - it never raises, and full-width / case / space variants read alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.hall.menu import load_menu
from jingxin.hall.router import Command, complaint_word, parse
from jingxin.hall.sessions import Pending
from jingxin.hall.text import data_size, normalise, yuan

HALL = load_menu().hall_for("10086")
LATER = datetime(2026, 10, 8, 5, 0, tzinfo=UTC)
SURVEY = Pending(kind="survey", payload={"survey": "nps-hall"}, expires_at=LATER)
SURVEY_EXPIRED = Pending(kind="survey", payload={"survey": "nps-hall"}, expires_at=LATER,
                         expired=True)  # fmt: skip
ORDER = Pending(kind="order", payload={"quote": "{}", "mo_id": 1}, expires_at=LATER)


def read(text: str, pending: Pending | None = None) -> Command:
    return parse(normalise(text), hall=HALL, pending=pending)


@pytest.mark.parametrize(("text", "name", "args"), [
    # menu and help
    ("0", "menu", {}), ("CD", "menu", {}), ("菜单", "menu", {}), ("help", "menu", {}),
    ("帮助", "menu", {}), ("?", "menu", {}), ("？", "menu", {}), (" ０ ", "menu", {}),
    # zones
    ("41", "zone", {"zone": "41"}), ("４２", "zone", {"zone": "42"}), ("43。", "zone", {"zone": "43"}),
    # queries
    ("YE", "balance", {}), ("cxye", "balance", {}), ("余额", "balance", {}), ("查余额！", "balance", {}),
    ("ll", "usage", {}), ("ＣＸＬＬ", "usage", {}), ("流量", "usage", {}), ("查流量", "usage", {}),
    ("tc", "plan", {}), ("cxtc", "plan", {}), ("套餐", "plan", {}), ("查套餐", "plan", {}),
    # confirmation
    ("Y", "confirm", {}), ("ｙ", "confirm", {}), ("是", "confirm", {}), ("确认", "confirm", {}),
    ("QX", "drop", {}), ("取消", "drop", {}),
    # orders
    ("KT10", "order", {"code": "10"}), ("kt 10", "order", {"code": "10"}),
    ("ＫＴＴＸＳＰ", "order", {"code": "txsp"}), ("开通TXSP", "order", {"code": "txsp"}),
    ("kt10 s1234", "order", {"code": "10", "staff_code": "s1234"}),
    ("KT10#S1234", "order", {"code": "10", "staff_code": "s1234"}),
    ("kt 10 # s1234", "order", {"code": "10", "staff_code": "s1234"}),
    ("kt", "hint", {"for": "order"}),
    ("qx10", "cancel", {"code": "10"}), ("取消 TXSP", "cancel", {"code": "txsp"}),
    # plan changes: the journeys' plan code (XY and the plan id's letters and digits)
    ("XYP4G034C24", "plan_change", {"code": "p4g034c24"}),
    ("ｘｙ p2", "plan_change", {"code": "p2"}), ("xy", "hint", {"for": "plan_change"}),
    ("xyp2 s1234", "unknown", {}), ("tc038", "unknown", {}),  # no staff code; TC is no code
    # referral
    ("13912345678CL", "referral", {"friend": "13912345678"}),
    ("13912345678 cl", "referral", {"friend": "13912345678"}),
    ("CL13912345678", "referral", {"friend": "13912345678"}),
    ("推荐13912345678", "referral", {"friend": "13912345678"}),
    ("+8613912345678cl", "referral", {"friend": "+8613912345678"}),
    ("12345cl", "referral", {"friend": "12345"}),  # invalid: refused by the referral, not here
    ("cl", "hint", {"for": "referral"}),
    # points and vouchers
    ("JF", "points", {}), ("积分", "points", {}),
    ("DHK1", "redeem", {"reward": "k1"}), ("兑换 K2", "redeem", {"reward": "k2"}),
    ("dh", "redeem", {"reward": ""}),
    ("QB", "vouchers", {}), ("券包", "vouchers", {}), ("我的券", "vouchers", {}),
    ("HX AB12CD", "verify", {"code": "ab12cd"}), ("核销AB12CD", "verify", {"code": "ab12cd"}),
    # feedback
    ("MY9", "nps", {"score": "9"}), ("my 10", "nps", {"score": "10"}),
    ("my11", "nps", {"score": "11"}),
    ("JY 希望多送流量", "suggestion", {"text": "希望多送流量"}),
    ("建议：晚上网速慢", "suggestion", {"text": "晚上网速慢"}),
    ("jy", "hint", {"for": "suggestion"}),
    # complaints, wherever the word is
    ("我要投诉", "complaint", {"word": "投诉"}), ("举报垃圾短信", "complaint", {"word": "举报"}),
    ("别再骚扰我了", "complaint", {"word": "骚扰"}), ("打12321", "complaint", {"word": "12321"}),
    ("315", "complaint", {"word": "315"}), ("jy 我要投诉你们", "complaint", {"word": "投诉"}),
    # a complaint number inside a code or a phone number is not a complaint
    ("kt315", "order", {"code": "315"}), ("13153151234cl", "referral", {"friend": "13153151234"}),
    # garbage
    ("", "unknown", {}), ("   ", "unknown", {}), ("😀😀", "unknown", {}), ("你好", "unknown", {}),
    ("ktv 1 2", "unknown", {}), ("#", "unknown", {}), ("jyk", "unknown", {}),
])  # fmt: skip
def test_texts_read_as_commands(text: str, name: str, args: dict) -> None:
    assert read(text) == Command(name, args)


def test_a_bare_score_answers_a_waiting_survey_and_only_then() -> None:
    # Given a survey waiting: 0..10 is the score (0 is not the menu then)
    assert read("9", SURVEY) == Command("nps", {"score": "9", "survey": "nps-hall"})
    assert read("0", SURVEY) == Command("nps", {"score": "0", "survey": "nps-hall"})
    assert read("１０", SURVEY) == Command("nps", {"score": "10", "survey": "nps-hall"})
    # But 11 and 41 are not scores, and an expired survey or an order waiting changes nothing
    assert read("11", SURVEY) == Command("unknown")
    assert read("41", SURVEY) == Command("zone", {"zone": "41"})
    assert read("0", SURVEY_EXPIRED) == Command("menu")
    assert read("9", ORDER) == Command("unknown")
    assert read("0", None) == Command("menu")


def test_a_zone_the_hall_does_not_have_is_not_a_zone() -> None:
    hall = HALL.model_copy(update={"zones": {"41": HALL.zones["41"]}})
    assert parse("41", hall=hall) == Command("zone", {"zone": "41"})
    assert parse("43", hall=hall) == Command("unknown")


def test_complaint_words_come_from_the_menu() -> None:
    hall = HALL.model_copy(update={"complaint_words": ("差评",)})
    assert parse("给你差评", hall=hall) == Command("complaint", {"word": "差评"})
    assert parse("我要投诉", hall=hall) == Command("unknown")
    assert complaint_word("315晚会", ("315",)) == "315"
    assert complaint_word("a315", ("315",)) is None


@pytest.mark.parametrize(("raw", "normal"), [
    ("ＫＴ１０", "kt10"), ("  Kt   10 ", "kt 10"), ("余额。", "余额"), ("y!!", "y"),
    ("？", "?"), ("查询余额？", "查询余额"), ("ＭＹ　９", "my 9"), ("\t0\n", "0"),
    ("查话费😀", "查话费"), ("😀😀 查话费", "查话费"), ("41👍🏻", "41"), ("1\ufe0f\u20e3", "1"),
    ("👍", ""), ("ＫＴ１０，Ｓ１００１", "kt10,s1001"),
])  # fmt: skip
def test_normalise(raw: str, normal: str) -> None:
    assert normalise(raw) == normal


def test_money_and_data_read_as_a_reply_says_them() -> None:
    assert [yuan(f) for f in (1500, 1250, 1205, 1, 0, -250)] == ["15", "12.5", "12.05", "0.01",
                                                                   "0", "-2.5"]  # fmt: skip
    assert [data_size(m) for m in (512, 1024, 1536, 10240)] == ["512MB", "1GB", "1.5GB", "10GB"]


# ----------------------------------------------------------------------------- properties

PENDINGS = st.sampled_from([None, SURVEY, SURVEY_EXPIRED, ORDER])
COMMAND_TEXTS = st.sampled_from([
    "kt10", "kt 10 s1234", "kt10#s1234", "qx10", "ye", "ll", "tc", "cxye", "jf", "qb", "dhk1",
    "hx ab12", "my9", "jy hello there", "13912345678cl", "cl13912345678", "41", "42", "43",
    "0", "cd", "help", "y", "qx", "ktv", "abc 123", "xyp4g034c24",
])  # fmt: skip


def full_width(text: str) -> str:
    """ASCII letters, digits and # as a Chinese keyboard types them in full-width mode."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c
                   for c in text)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), pending=PENDINGS)
def test_parse_never_raises(text: str, pending: Pending | None) -> None:
    command = parse(normalise(text), hall=HALL, pending=pending)
    assert isinstance(command, Command) and command.name


@settings(max_examples=200, deadline=None)
@given(text=COMMAND_TEXTS, pending=PENDINGS, data=st.data())
def test_width_case_and_spaces_do_not_change_the_command(text: str, pending, data) -> None:
    # Given a command as typed plainly, and the same typed in full-width, in some case,
    # with extra spaces around and between its words
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    cased = "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))
    padded = data.draw(st.sampled_from(["", " ", "  ", "\u3000"])) + cased.replace(
        " ", data.draw(st.sampled_from([" ", "  ", "\u3000", " \t"]))) + data.draw(
        st.sampled_from(["", " ", "。", "!"]))  # fmt: skip
    variant = full_width(padded) if data.draw(st.booleans()) else padded
    # Then both read as the same command
    assert read(variant, pending) == read(text, pending)

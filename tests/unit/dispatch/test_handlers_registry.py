"""Which handler answers an MO: keywords after NFKC + case folding, service numbers by
prefix, keyword before catch-all, and the ``[inbox]`` settings checked at start-up."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from jingxin.config import load_settings
from jingxin.dispatch.handlers import (
    HandlerRegistry,
    HandlerResult,
    InboundMessage,
    default_registry,
    keyword_form,
    match_form,
)
from jingxin.errors import ConfigError

AT = datetime(2026, 10, 8, 4, 0, tzinfo=UTC)


@dataclass
class Named:
    name: str

    def handle(self, mo, *, context) -> HandlerResult:
        return HandlerResult(detail=self.name)


def mo(text: str, *, to: str = "10690000", undecodable: bool = False) -> InboundMessage:
    return InboundMessage(id=1, channel="sim-smpp", msisdn="+8613912345678",
                          service_number=to, text=text, received_at=AT,
                          undecodable=undecodable)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "unsubscribes"),
    [
        ("TD", True), ("td", True), ("ＴＤ", True), (" Td \n", True), ("退订", True),
        ("T", True), ("n", True), ("Ｒ", True), ("TD 谢谢", True), ("退订 ", True),
        ("TD.", True), ("【TD】", True), ("td!", True), ("退订。", True), ("TD🙏", True),
        ("退订，谢谢", True), ("「退订」", True), ("T.D", True), ("👍TD", True),
        ("T恤多少钱", False), ("TDX", False), ("请问套餐", False), ("", False),
        ("STOP", False), ("👍", False), ("TD2", False),
    ],
)
def test_unsubscribe_words_match_in_every_width_and_case(text: str, unsubscribes: bool) -> None:
    # Given the default settings (TD, T, N, R, 退订)
    registry = default_registry(load_settings())
    # When an MO with this text arrives at any service number
    handler = registry.match(mo(text, to="1069012345"))
    # Then the unsubscribe handler answers exactly the unsubscribe words
    assert (handler is not None and handler.name == "unsubscribe") is unsubscribes


def test_keyword_beats_catch_all_and_longer_service_number_wins() -> None:
    # Given a catch-all hall on 10086, a keyword reply on 10086 and one on 1008601
    registry = HandlerRegistry()
    registry.register(Named("hall"), service_number="10086")
    registry.register(Named("cx-short"), service_number="10086", keywords=["CX"])
    registry.register(Named("cx-long"), service_number="1008601", keywords=["cx"])
    # When MO arrive, Then the most specific registration answers
    assert registry.match(mo("cx", to="10086")).name == "cx-short"
    assert registry.match(mo("ＣＸ", to="100860188")).name == "cx-long"  # extension digits
    assert registry.match(mo("你好", to="10086")).name == "hall"
    assert registry.match(mo("cx", to="10010")) is None


def test_undecodable_mo_matches_on_the_printable_payload() -> None:
    registry = default_registry(load_settings())
    # Given an MO whose payload could not be decoded (kept as hex) but is ASCII "TD"
    hex_td = binascii.hexlify(b"\x00TD").decode()
    # When it is matched, Then the unsubscribe word is still seen; garbage matches nothing
    assert registry.match(mo(hex_td, undecodable=True)).name == "unsubscribe"
    assert registry.match(mo("ffee01", undecodable=True)) is None
    assert registry.match(mo("not hex", undecodable=True)) is None


def test_auto_replies_register_per_service_number() -> None:
    # Given an auto-reply for CX on 10690000 only, and one for HELP everywhere
    settings = load_settings(inbox={"auto_replies": [
        {"service_number": "10690000", "keyword": "CX", "reply": "您的余额为..."},
        {"keyword": "help", "reply": "回复TD退订"},
    ]})
    registry = default_registry(settings)
    # Then each answers where configured, and an unconfigured word answers nothing
    assert registry.match(mo("cx", to="10690000")).name == "autoreply"
    assert registry.match(mo("cx", to="1069012345")) is None
    assert registry.match(mo("ＨＥＬＰ", to="1069012345")).name == "autoreply"


@pytest.mark.parametrize(
    ("inbox", "says"),
    [
        ({"auto_replies": [{"keyword": "ｔｄ", "reply": "x"}]},
         "inbox.auto_replies[0].keyword: 'ｔｄ' is an unsubscribe word"),
        ({"auto_replies": [{"keyword": "   ", "reply": "x"}]},
         "inbox.auto_replies[0].keyword: empty"),
        ({"unsubscribe_words": ["TD", " "]}, "an empty keyword"),
    ],
)
def test_bad_inbox_settings_name_the_setting(inbox: dict, says: str) -> None:
    # Given [inbox] settings that cannot work, When the registry is built, Then one clear line
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        default_registry(load_settings(inbox=inbox))


def test_settings_refuse_a_non_positive_window_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="inbox.attribution_window_hours"):
        load_settings(inbox={"attribution_window_hours": 0})
    with pytest.raises(ConfigError, match="inbox.auto_replies.0.text"):
        load_settings(inbox={"auto_replies": [{"keyword": "a", "reply": "b", "text": "c"}]})


def test_keyword_form_is_nfkc_casefold_strip() -> None:
    assert keyword_form("  ＴＤ\u3000") == "td"
    assert keyword_form("Straße") == "strasse"
    assert keyword_form("TD.") == "td."  # the inbox's search keeps what was typed


@pytest.mark.parametrize(("raw", "form"), [
    ("TD.", "td"), ("【ＴＤ】", "td"), ("退订，谢谢", "退订 谢谢"), ("TD🙏🏻", "td"),
    ("👨\u200d👩\u200d👧 n", "n"), ("1\ufe0f\u20e3", "1"), ("T恤", "t恤"), ("?", "?"),
    ("？！", "?!"), ("Q&A", "q a"),
])  # fmt: skip
def test_match_form_makes_marks_spaces_but_keeps_a_text_of_marks(raw: str, form: str) -> None:
    assert match_form(raw) == form


def test_an_auto_reply_keyword_of_marks_still_matches_itself() -> None:
    # Given an auto-reply on "?" (help), When "？" (full-width) arrives, Then it answers
    registry = default_registry(load_settings(inbox={"auto_replies": [
        {"keyword": "?", "reply": "回复TD退订，回复JY咨询"}]}))  # fmt: skip
    handler = registry.match(mo("？"))
    assert handler is not None and handler.name != "unsubscribe"

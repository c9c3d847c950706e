"""Content review: verdicts, reasons and spans in the original text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.content.lexicon import Entry, Lexicon, build_lexicon
from jingxin.content.review import Reviewer, static_text
from jingxin.content.templates import compile_template

REVIEWER = Reviewer(
    lexicon=build_lexicon(),
    allowed_domains=("jx.cn", "10086.cn"),
    unsubscribe_text="回T退订",
    max_parts=3,
)


def _codes(result) -> list[tuple[str, str]]:
    return [(r.code, r.severity) for r in result.reasons]


@pytest.mark.parametrize(
    ("text", "category", "verdict", "codes"),
    [
        ("【中国移动】您的验证码为482913，5分钟内有效。", "otp", "pass", []),
        ("【中国移动】送您2GB流量，回复LB领取。回T退订", "marketing", "pass", []),
        (
            "【中国移动】送您2GB流量，回复LB领取。",
            "marketing",
            "block",
            [("missing_unsubscribe", "block")],
        ),
        ("您的验证码为482913。", "otp", "block", [("missing_signature", "block")]),
        ("您的验证码为482913。【精信】", "otp", "pass", []),
        ("【精信】兼职刷单日结", "notification", "block", [("lexicon", "block")]),
        ("【精信】兼 职*刷 单日结", "notification", "block", [("lexicon", "block")]),
        ("【精信】兼職刷單日結", "notification", "block", [("lexicon", "block")]),
        ("【精信】有疑问加微信咨询", "notification", "needs-review", [("lexicon", "review")]),
        ("【精信】详情 https://www.jx.cn/a/b 查看", "notification", "pass", []),
        ("【精信】详情 10086.cn/x 查看", "notification", "pass", []),
        (
            "【精信】详情 https://evil.com/a",
            "notification",
            "needs-review",
            [("link_unknown", "review")],
        ),
        (
            "【精信】详情 example.top/a",
            "notification",
            "needs-review",
            [("link_unknown", "review")],
        ),
        ("【精信】详情 http://8.8.8.8/x", "notification", "block", [("link_blocked", "block")]),
        ("【精信】详情 t.cn/Ab3", "notification", "block", [("link_blocked", "block")]),
        ("【精信】联系13812345678", "notification", "needs-review", [("phone_number", "review")]),
        (
            "【精信】联系+86 13812345678",
            "notification",
            "needs-review",
            [("phone_number", "review")],
        ),
        ("【精信】致电010-88886666", "notification", "needs-review", [("phone_number", "review")]),
        ("【精信】热线400-810-8888", "notification", "needs-review", [("phone_number", "review")]),
        ("【精信】运单SF1409827733012，订单202611230088", "notification", "pass", []),
        ("【精信】客服10086，余额5.8元，流量1.5GB", "notification", "pass", []),
        ("【精信】" + "长" * 250, "notification", "block", [("too_long", "block")]),
    ],
)
def test_review_table(text: str, category: str, verdict: str, codes: list) -> None:
    result = REVIEWER.review(text, category=category)
    assert result.verdict == verdict, result.reasons
    assert sorted(set(_codes(result))) == sorted(set(codes))


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("【精信】兼 职*刷 单，日结", "兼 职*刷 单"),
        ("【精信】保证你無視徵信！", "無視徵信"),
        ("【精信】ＶＸ加ｖｘ好友", "加ｖｘ"),
    ],
)
def test_lexicon_spans_point_at_the_original_text(text: str, word: str) -> None:
    result = REVIEWER.review(text)
    spans = [r.span for r in result.reasons if r.code == "lexicon"]
    assert spans, result.reasons
    start, end = spans[0]
    assert text[start:end] == word


def test_latin_word_inside_a_longer_word_is_not_a_hit() -> None:
    reviewer = Reviewer(lexicon=Lexicon([Entry("bc", "x", "block", "t")]))
    assert reviewer.review("【精信】abc def").verdict == "pass"
    assert reviewer.review("【精信】a bc def").verdict == "block"


def test_link_and_phone_spans() -> None:
    text = "【精信】看 https://evil.com/p 或拨13812345678"
    result = REVIEWER.review(text)
    found = {r.code: text[r.span[0] : r.span[1]] for r in result.reasons}
    assert found == {"link_unknown": "https://evil.com/p", "phone_number": "13812345678"}


def test_signature_check_can_be_skipped() -> None:
    assert REVIEWER.review("您好", require_signature=False).verdict == "pass"


def test_result_carries_parts() -> None:
    result = REVIEWER.review("【精信】" + "好" * 70)
    assert (result.parts.encoding, result.parts.parts) == ("ucs2", 2)


def test_static_text_shows_variables_as_placeholders() -> None:
    compiled = compile_template(
        "您好{{ name }}{% if x %}，有{{ x }}{% endif %}。", {"name": "str", "x": "int"}
    )
    assert static_text(compiled) == "您好〇，有〇。"


WORDS = ["兼职刷单", "百家乐", "加微信", "无视征信", "代开发票"]
NOISE = st.sampled_from(list("，。 *·!~　\u200b") + ["😀"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(WORDS), st.text(alphabet="您好流量套餐办理", max_size=5)),
        max_size=6,
    ),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_disguised_words_are_found_with_spans_inside_the_text(pieces, rnd, data) -> None:
    # Given words with dodging symbols inserted between their characters
    disguised = []
    for piece in pieces:
        chars = list(piece)
        disguised.append(
            "".join(ch + (data.draw(NOISE) if rnd.random() < 0.3 else "") for ch in chars)
        )
    text = "【精信】" + "".join(disguised)
    result = REVIEWER.review(text)
    # Then every planted word is reported, and each span, normalised, contains a lexicon word
    reported = {r.message.split("'")[1] for r in result.reasons if r.code == "lexicon"}
    assert {w for w in pieces if w in WORDS} <= reported
    for reason in result.reasons:
        if reason.span:
            start, end = reason.span
            assert 0 <= start < end <= len(text)
    assert result.verdict in {"pass", "needs-review", "block"}

"""The optimised review gives exactly what a straightforward reference implementation gives.

The reference finds every lexicon word with ``str.find`` over the normalised text, maps
spans back with :meth:`Normaliser.index_map`, and runs the full link and phone patterns
over the whole text with no pre-checks; it builds every reason with ``Reason(...)``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.content.encoding import count_parts
from jingxin.content.envelope import has_signature, has_unsubscribe_route
from jingxin.content.lexicon import Entry, Lexicon, build_lexicon
from jingxin.content.review import (
    _IP_HOST,
    _LINKS,
    _PHONES,
    SHORTENERS,
    Reason,
    Reviewer,
    ReviewResult,
    host_allowed,
)

EXTRA = [
    Entry("兼职", "jobs", "review", "t"),
    Entry("刷单", "fraud", "block", "t"),
    Entry("兼职刷单", "fraud", "block", "t"),
    Entry("贷款", "loans", "review", "t"),
    Entry("低息贷款秒批", "loans", "block", "t"),  # holds 贷款 in the middle: reported later
    Entry("vx", "contact", "review", "t"),
    Entry("qq群", "contact", "review", "t"),
    Entry("ab", "latin", "block", "t"),
    Entry("abab", "latin", "review", "t"),
    Entry("12306", "numbers", "review", "t"),
]
REVIEWER = Reviewer(
    lexicon=Lexicon([*build_lexicon().entries, *EXTRA]),
    allowed_domains=("jx.cn", "10086.cn"),
    max_parts=2,
)
PIECES = [
    *(e.word for e in EXTRA),
    "兼職",
    "貸款",
    "ＶＸ",
    "Ａｂ",
    "百家乐",
    "加微信",
    "【精信】",
    "回T退订",
    "http://",
    "https://1.2.3.4/x",
    "t.cn/Ab",
    "jx.cn",
    "evil.com",
    ".top/",
    "13812345678",
    "+86 ",
    "010-",
    "88886666",
    "400-810-8888",
    "您好",
]
NOISE = list("，。 *·!~　\u200b-+.:/0123456789aAbB") + ["😀", "\u0301"]


def reference_review(reviewer: Reviewer, text: str, category: str) -> ReviewResult:
    normaliser, lexicon = reviewer.normaliser, reviewer.lexicon
    normalised, kept = normaliser.normalise(text), normaliser.index_map(text)
    lexicon_reasons = []
    for entry in lexicon.entries:
        key = normaliser.normalise(entry.word)
        at = normalised.find(key)
        while at >= 0:
            start, stop = kept[at], kept[at + len(key) - 1] + 1
            bounded = not _latin_neighbour(text, start - 1) and not _latin_neighbour(text, stop)
            if not key.isascii() or bounded:
                message = f"{entry.category} word {entry.word!r} ({entry.source})"
                span = (start, stop)
                lexicon_reasons.append(
                    Reason("lexicon", entry.severity, message, span, entry.category)
                )
            at = normalised.find(key, at + 1)
    reasons = sorted(lexicon_reasons, key=lambda r: r.span)
    for found in _LINKS.finditer(text):
        host = (found["host"] or found["bare"] or "").lower()
        if _IP_HOST.match(host) or host in SHORTENERS:
            message = f"link to {host!r} (IP address or public shortener)"
            reasons.append(Reason("link_blocked", "block", message, found.span()))
        elif not host_allowed(host, reviewer.allowed_domains):
            message = f"link to {host!r}, not an allowed domain"
            reasons.append(Reason("link_unknown", "review", message, found.span()))
    for found in _PHONES.finditer(text):
        message = f"phone number {found[0]!r} in the text"
        reasons.append(Reason("phone_number", "review", message, found.span()))
    if not has_signature(text):
        message = "no 【signature】 at the start or end of the text"
        reasons.append(Reason("missing_signature", "block", message))
    if category == "marketing" and not has_unsubscribe_route(text, reviewer.unsubscribe_text):
        message = f"marketing text without an unsubscribe route (e.g. {reviewer.unsubscribe_text})"
        reasons.append(Reason("missing_unsubscribe", "block", message))
    parts = count_parts(text)
    if parts.parts > reviewer.max_parts:
        message = f"{parts.parts} parts; at most {reviewer.max_parts} allowed"
        reasons.append(Reason("too_long", "block", message))
    severities = {r.severity for r in reasons}
    verdict = "block" if "block" in severities else "needs-review" if reasons else "pass"
    return ReviewResult(text, verdict, tuple(reasons), parts)


def _latin_neighbour(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isascii() and text[index].isalnum()


TEXTS = st.lists(st.sampled_from(PIECES) | st.sampled_from(NOISE), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXTS, st.sampled_from(["notification", "marketing"]))
def test_review_equals_the_reference(text: str, category: str) -> None:
    # Given a random text of lexicon words, disguises, links, numbers and symbols
    # When the optimised review and the reference review it
    result = REVIEWER.review(text, category=category)
    expected = reference_review(REVIEWER, text, category)
    # Then verdict, every reason (code, severity, message, span, category) and parts agree
    assert result == expected
    assert [hash(r) for r in result.reasons] == [hash(r) for r in expected.reasons]


def test_reference_finds_overlapping_and_repeated_words() -> None:
    # Given a text where words overlap and repeat (so the comparison above is not vacuous)
    text = "【精信】兼职刷单，兼 職刷單 ab abab 低息貸款秒批"
    result = REVIEWER.review(text)
    # Then both paths report all of them, in span order
    words = [text[r.span[0] : r.span[1]] for r in result.reasons if r.code == "lexicon"]
    assert words == [
        "兼职",
        "兼职刷单",
        "刷单",
        "兼 職",
        "兼 職刷單",
        "刷單",
        "ab",
        "abab",
        "低息貸款秒批",
        "貸款",
        "貸款秒批",
    ]
    assert result == reference_review(REVIEWER, text, "notification")

"""The review normaliser: folding table and the map back to original positions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jingxin.content.normalise import MARK, default_normaliser

N = default_normaliser()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("贷*款", "贷款"),
        ("贷 款", "贷款"),
        ("贷　款", "贷款"),  # ideographic space
        ("貸款", "贷款"),  # traditional
        ("無視徵信", "无视征信"),
        ("ＶＸ１２３", "vx123"),  # full-width letters and digits
        ("加\u200b微\u200d信", "加微信"),  # zero-width characters
        ("Hello, WORLD!", "helloworld"),
        ("代😀开发票", "代开发票"),  # emoji inserted to dodge
        ("【中国移动】您好。", "中国移动您好"),
        ("", ""),
    ],
)
def test_normalise_table(text: str, expected: str) -> None:
    assert N.normalise(text) == expected


@pytest.mark.parametrize(
    ("text", "start", "end", "original"),
    [
        ("贷*款", 0, 2, "贷*款"),
        ("请点击：貸 款 秒批", 3, 5, "貸 款"),
        ("ａ，ｂ，ｃ", 1, 3, "ｂ，ｃ"),
    ],
)
def test_original_span(text: str, start: int, end: int, original: str) -> None:
    # Given a normalised span, When mapped back, Then it covers the original characters
    a, b = N.original_span(N.mark(text)[1], start, end)
    assert text[a:b] == original


@given(st.text(max_size=200))
def test_mark_lines_up_with_the_original(text: str) -> None:
    normalised, marked = N.mark(text)
    kept = N.index_map(text)
    # Then the marked string is as long as the text, its marks are the dropped characters,
    # and every kept character folds to the normalised character at its index
    assert len(marked) == len(text)
    assert normalised == marked.replace(MARK, "")
    assert len(kept) == len(normalised)
    for i, index in enumerate(kept):
        assert N.normalise(text[index]) == normalised[i]
    if normalised:
        a, b = N.original_span(marked, 0, len(normalised))
        assert N.normalise(text[a:b]) == normalised


@given(st.text(max_size=100))
def test_normalise_is_idempotent(text: str) -> None:
    once = N.normalise(text)
    assert N.normalise(once) == once


@given(st.text(max_size=100))
def test_normalised_text_stays_in_the_bmp(text: str) -> None:
    # Given any text, emoji and rare ideographs included
    # Then nothing beyond the BMP survives: the review reads automaton hits over UTF-16
    # octets as character index = octet index // 2, which needs one code unit a character
    assert all(ord(ch) < 0x10000 for ch in default_normaliser().normalise(text))

"""Smart-SMS cards: validation and the plain-text fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.content.card import fallback_text, load_card, parse_card
from jingxin.content.encoding import count_parts
from jingxin.errors import InputError

CARD = {
    "version": 1,
    "brand": {"name": "中国移动", "logo": "https://jx.cn/logo/cmcc.png"},
    "title": "流量使用提醒",
    "body": "您本月国内流量已使用85%，剩余3GB。",
    "buttons": [
        {"label": "订购加油包", "action": "reply", "value": "JY20"},
        {"label": "客服热线", "action": "call", "value": "10086"},
        {"label": "复制优惠码", "action": "copy", "value": "JX2026"},
        {"label": "查看详情", "action": "open_url", "value": "https://jx.cn/d/1"},
    ],
}


def test_fallback_lists_buttons_as_text_lines() -> None:
    text = fallback_text(parse_card(CARD))
    assert text.splitlines() == [
        "【中国移动】流量使用提醒：您本月国内流量已使用85%，剩余3GB。",
        "回复JY20订购加油包",
        "客服热线请拨打10086",
        "复制优惠码：JX2026",
        "查看详情：https://jx.cn/d/1",
    ]


def test_marketing_fallback_ends_with_unsubscribe_route() -> None:
    text = fallback_text(parse_card(CARD), category="marketing", signature="【精信】")
    assert text.startswith("【精信】") and text.endswith("\n回T退订")


@pytest.mark.parametrize("max_parts", [1, 2, 3])
def test_long_body_is_cut_to_fit_the_budget(max_parts: int) -> None:
    # Given a card whose body alone needs many parts
    card = parse_card(
        {**CARD, "body": "为您推荐更合适的套餐。" * 60, "buttons": CARD["buttons"][:2]}
    )
    # When the fallback is built for a small budget
    text = fallback_text(card, max_parts=max_parts)
    # Then it fits, keeps the title and every button, and marks the cut
    assert count_parts(text).parts <= max_parts
    assert "…" in text and "流量使用提醒" in text and "回复JY20订购加油包" in text


def test_buttons_alone_too_long_is_an_error() -> None:
    card = parse_card({**CARD, "title": "长" * 30})
    with pytest.raises(InputError, match="title and buttons"):
        fallback_text(card, max_parts=1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"buttons": CARD["buttons"] * 2}, "buttons"),
        ({"brand": {"name": "中国移动", "logo": "ftp://x"}}, "brand.logo"),
        ({"buttons": [{"label": "打", "action": "call", "value": "call-me"}]}, "buttons.0"),
        (
            {"buttons": [{"label": "开", "action": "open_url", "value": "javascript:x"}]},
            "buttons.0",
        ),
        ({"buttons": [{"label": "回", "action": "reply", "value": "a b"}]}, "buttons.0"),
        ({"buttons": [{"label": "x", "action": "pay", "value": "1"}]}, "buttons.0.action"),
        ({"title": ""}, "title"),
        ({"version": 2}, "version"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_cards_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(InputError, match=f"field '{field}"):
        parse_card({**CARD, **change})


def test_load_card_from_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(CARD, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "brand: {name: 精信, logo: 'https://jx.cn/l.png'}\ntitle: 通知\nbody: 您好\n",
        encoding="utf-8",
    )
    assert load_card(tmp_path / "c.json").title == "流量使用提醒"
    assert load_card(tmp_path / "c.yaml").buttons == ()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.json", None, "cannot read"), ("bad.json", "{", "line 1: invalid JSON")],
)
def test_bad_card_files(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_card(tmp_path / name)


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet="您好流量套餐ABC abc123，。€😀", min_size=1, max_size=900).filter(str.strip),
    st.integers(min_value=1, max_value=6),
    st.sampled_from(["notification", "marketing"]),
)
def test_fallback_always_fits_and_keeps_buttons(body: str, max_parts: int, category: str) -> None:
    card = parse_card({**CARD, "body": body, "buttons": CARD["buttons"][:2]})
    text = fallback_text(card, max_parts=max_parts, category=category)
    assert count_parts(text).parts <= max_parts
    assert text.startswith("【中国移动】流量使用提醒")
    assert "回复JY20订购加油包" in text and "客服热线请拨打10086" in text

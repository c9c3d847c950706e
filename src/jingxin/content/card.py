"""Smart-SMS cards (智能短信卡片) and their plain-text fallback.

A card is a JSON document (``docs/content.md`` documents it)::

    {"version": 1,
     "brand": {"name": "中国移动", "logo": "https://jx.cn/logo/cmcc.png"},
     "title": "流量使用提醒",
     "body": "您本月流量已使用85%，剩余3GB。",
     "buttons": [{"label": "订购加油包", "action": "reply", "value": "JY20"},
                 {"label": "客服热线", "action": "call", "value": "10086"}]}

Phones that cannot render cards get :func:`fallback_text`: signature, title, body (cut
with "…" if needed) and one line per button (``回复JY20订购加油包``, ``客服热线请拨打10086``,
links), fitted to the parts budget with the one splitter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jingxin.content.encoding import count_parts
from jingxin.content.envelope import has_unsubscribe_route, with_signature
from jingxin.errors import InputError

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d+)?(?:/\S*)?$")
_PHONE = re.compile(r"^\+?[0-9][0-9-]{2,19}$")
_KEYWORD = re.compile(r"^\S{1,20}$")
ELLIPSIS = "…"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Brand(_Model):
    """Who the card is from: a short name (shown as the signature) and a logo image URL."""

    name: str = Field(min_length=2, max_length=16)
    logo: str = Field(pattern=_URL.pattern)


class CardButton(_Model):
    """One menu button: open a link, call a number, copy a code or reply a keyword."""

    label: str = Field(min_length=1, max_length=12)
    action: Literal["open_url", "call", "copy", "reply"]
    value: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _value_fits_action(self) -> CardButton:
        checks = {
            "open_url": (_URL, "an http(s) URL"),
            "call": (_PHONE, "a phone number (digits, + and -)"),
            "copy": (_KEYWORD, "1-20 characters without spaces"),
            "reply": (_KEYWORD, "1-20 characters without spaces"),
        }
        pattern, wanted = checks[self.action]
        if not pattern.match(self.value):
            raise ValueError(
                f"{self.action} button {self.label!r} needs {wanted}, got {self.value!r}"
            )
        return self

    def as_text(self) -> str:
        """The button as a line of plain text."""
        if self.action == "reply":
            return f"回复{self.value}{self.label}"
        if self.action == "call":
            return f"{self.label}请拨打{self.value}"
        if self.action == "copy":
            return f"{self.label}：{self.value}"
        return f"{self.label}：{self.value}"


class Card(_Model):
    """A smart-SMS card, version 1."""

    version: Literal[1] = 1
    brand: Brand
    title: str = Field(min_length=1, max_length=30)
    body: str = Field(min_length=1, max_length=1000)
    buttons: tuple[CardButton, ...] = Field(default=(), max_length=4)


def parse_card(raw: object, *, source: str = "card") -> Card:
    """Validate a loaded card document; the error names the field."""
    try:
        return Card.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise InputError(f"{source}: field {field!r}: {err['msg']}") from exc


def load_card(path: str | Path) -> Card:
    """A card from a JSON or YAML file."""
    from jingxin.data.textfile import read_text

    path = Path(path)
    text = read_text(path, what="card file", error=InputError)
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable card document: {exc}") from exc
    return parse_card(raw, source=str(path))


def _compose(card: Card, body: str, signature: str, category: str, unsubscribe_text: str) -> str:
    lines = [f"{card.title}：{body}" if body else card.title]
    lines.extend(button.as_text() for button in card.buttons)
    if category == "marketing" and not has_unsubscribe_route("\n".join(lines), unsubscribe_text):
        lines.append(unsubscribe_text)
    return with_signature("\n".join(lines), signature)


def fallback_text(
    card: Card,
    *,
    signature: str | None = None,
    category: str = "notification",
    max_parts: int = 6,
    unsubscribe_text: str = "回T退订",
) -> str:
    """The plain SMS for phones without card support, within ``max_parts``.

    The signature defaults to the brand's name. Title and buttons are kept whole; the
    body is cut (ending in "…") as little as needed. Raises :class:`InputError` when
    even the title and buttons alone need more parts than allowed.
    """
    sign = signature or card.brand.name
    full = _compose(card, card.body, sign, category, unsubscribe_text)
    if count_parts(full).parts <= max_parts:
        return full
    low, high = 0, len(card.body) - 1  # longest body prefix that still fits
    best = None
    while low <= high:
        middle = (low + high) // 2
        body = card.body[:middle].rstrip() + ELLIPSIS if middle else ""
        text = _compose(card, body, sign, category, unsubscribe_text)
        if count_parts(text).parts <= max_parts:
            best, low = text, middle + 1
        else:
            high = middle - 1
    if best is None:
        raise InputError(
            f"card {card.title!r}: the title and buttons alone need more than {max_parts} parts"
        )
    return best

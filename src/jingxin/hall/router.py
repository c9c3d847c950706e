"""The command router: a normalised text (:func:`jingxin.hall.text.normalise`) to a command.

:func:`parse` is a pure function of the text, the hall's menu (its zones and complaint
words) and what waits for the subscriber's answer; it never raises, whatever the text.
The grammar (docs/hall.md), first match wins:

==================  =================================================  ==============
survey pending      a bare ``0``..``10``                               ``nps``
complaint word      anywhere in the text (digit words not inside       ``complaint``
                    a longer run of letters or digits: ``kt315``)
menu                ``0`` ``cd`` ``菜单`` ``help`` ``帮助`` ``?``        ``menu``
zones               ``41`` ``42`` ``43`` (those the hall has)          ``zone``
queries             ``ye`` ``ll`` ``tc`` (``cx``..., 余额 流量 套餐)     ``balance`` ...
confirmation        ``y`` ``是`` ``确认``; ``qx`` ``取消`` alone        ``confirm`` ``drop``
order               ``kt<code>`` ``开通<code>``, ``[ #]<staff code>``   ``order``
plan change         ``xy<code>`` (the journeys' plan code)             ``plan_change``
cancel a product    ``qx<code>`` ``取消<code>``                         ``cancel``
referral            ``<number>cl`` ``cl<number>`` ``推荐<number>``      ``referral``
points, vouchers    ``jf`` ``dh[<code>]`` ``qb`` ``hx<code>``           ``points`` ...
feedback            ``my<0-10>``; ``jy <text>`` ``建议<text>``          ``nps`` ``suggestion``
a bare prefix       ``kt``, ``xy``, ``dh``, ``cl`` ... alone            ``hint``
anything else       garbage, emoji, the empty text                      ``unknown``
==================  =================================================  ==============

``N`` is an unsubscribe word of the inbox and never reaches the hall: there is no "no"
command; ``qx`` drops what is pending.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from jingxin.hall.menu import HallMenu
from jingxin.hall.sessions import Pending

MENU = frozenset({"0", "cd", "菜单", "help", "帮助", "?", "查询", "menu"})
CONFIRM = frozenset({"y", "yes", "是", "确认", "确定"})
DROP = frozenset({"qx", "取消", "放弃"})
WORDS = {
    "balance": frozenset({"ye", "cxye", "余额", "查余额", "查询余额", "余额查询", "话费", "查话费"}),
    "usage": frozenset({"ll", "cxll", "流量", "查流量", "查询流量", "流量查询"}),
    "plan": frozenset({"tc", "cxtc", "套餐", "查套餐", "查询套餐", "套餐查询"}),
    "points": frozenset({"jf", "cxjf", "积分", "查积分", "查询积分"}),
    "vouchers": frozenset({"qb", "券包", "我的券", "卡券"}),
}
# Prefixes that want something after them; alone they get a hint of what.
HINTS = {"kt": "order", "开通": "order", "xy": "plan_change", "hx": "verify",
         "核销": "verify", "cl": "referral", "推荐": "referral", "my": "nps",
         "jy": "suggestion", "建议": "suggestion"}  # fmt: skip

_CODE = r"([^\s#]+)"
_ORDER = re.compile(rf"^(?:kt|开通)\s?{_CODE}(?:\s?#\s?|\s){_CODE}$|^(?:kt|开通)\s?{_CODE}$")
_PLAN_CHANGE = re.compile(rf"^xy\s?{_CODE}$")
_CANCEL = re.compile(rf"^(?:qx|取消)\s?{_CODE}$")
_REDEEM = re.compile(r"^(?:dh|兑换)\s?([^\s#]*)$")  # alone: the list of rewards
_VERIFY = re.compile(rf"^(?:hx|核销)\s?{_CODE}$")
_NUMBER = r"(\+?\d{3,20})"
_REFERRAL = re.compile(rf"^{_NUMBER}\s?cl$|^(?:cl|推荐)\s?{_NUMBER}$")
_NPS = re.compile(r"^(?:my|满意度)\s?(\d{1,3})$")
_SUGGESTION = re.compile(r"^(?:jy(?=$|[\s:：]|[^\x00-\x7f])|建议)[\s:：]*(.*)$", re.DOTALL)
_SCORE = re.compile(r"^\d{1,2}$")


@dataclass(frozen=True, slots=True)
class Command:
    """What a text asks for: a command name and its arguments (all text)."""

    name: str
    args: Mapping[str, str] = field(default_factory=dict)


UNKNOWN = Command("unknown")


def parse(text: str, *, hall: HallMenu, pending: Pending | None = None) -> Command:
    """The command ``text`` (already normalised) asks for; see the module docstring."""
    if not text:
        return UNKNOWN
    if (pending is not None and pending.kind == "survey" and not pending.expired
            and _SCORE.match(text) and int(text) <= 10):  # fmt: skip
        return Command("nps", {"score": text, "survey": str(pending.payload.get("survey", ""))})
    word = complaint_word(text, hall.complaint_words)
    if word is not None:
        return Command("complaint", {"word": word})
    return _exact(text, hall) or _prefixed(text) or UNKNOWN


def _exact(text: str, hall: HallMenu) -> Command | None:
    if text in MENU:
        return Command("menu")
    if text in hall.zones:
        return Command("zone", {"zone": text})
    if text in CONFIRM:
        return Command("confirm")
    if text in DROP:
        return Command("drop")
    for name, words in WORDS.items():
        if text in words:
            return Command(name)
    if text in HINTS:
        return Command("hint", {"for": HINTS[text]})
    return None


def _prefixed(text: str) -> Command | None:
    if m := _ORDER.match(text):
        code, staff, alone = m.groups()
        if alone is not None:
            return Command("order", {"code": alone})
        return Command("order", {"code": code, "staff_code": staff})
    if m := _PLAN_CHANGE.match(text):
        return Command("plan_change", {"code": m[1]})
    if m := _CANCEL.match(text):
        return Command("cancel", {"code": m[1]})
    if m := _REFERRAL.match(text):
        return Command("referral", {"friend": m[1] or m[2]})
    if m := _REDEEM.match(text):
        return Command("redeem", {"reward": m[1]})
    if m := _VERIFY.match(text):
        return Command("verify", {"code": m[1]})
    if m := _NPS.match(text):
        return Command("nps", {"score": m[1]})
    if m := _SUGGESTION.match(text):
        return Command("suggestion", {"text": m[1].strip()})
    return None


def complaint_word(text: str, words: tuple[str, ...]) -> str | None:
    """The first complaint word in ``text``, or None. A word of letters or digits
    (``315``, ``12321``) counts only standing alone, not inside ``kt315`` or a number."""
    for word in words:
        if word.isascii() and word.isalnum():
            if re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text):
                return word
        elif word in text:
            return word
    return None

"""What wraps every SMS body: the tenant's signature in front, an unsubscribe route at the end.

Chinese regulation and operator practice want ``【Name】`` on every message (it counts
towards the length) and an unsubscribe route (``回T退订``) on every marketing message.
Templates add them here; review checks them with the same functions.
"""

from __future__ import annotations

import re

_SIGNATURE_START = re.compile(r"【[^【】]{2,16}】")
_SIGNATURE_END = re.compile(r"【[^【】]{2,16}】$")
# Wordings operators accept as an unsubscribe route: 回T退订, 回TD退订, 退订回T, 拒收请回复R ...
UNSUBSCRIBE_ROUTE = re.compile(
    r"回复?\s*[Tt][Dd]?\s*退订|退订\s*(?:请)?回复?\s*[Tt][Dd]?|拒收\s*(?:请)?回复?\s*[Rr]"
)
_CLOSING = tuple("。！？；，.!?;,")


def signature_mark(signature: str) -> str:
    """``中国移动`` or ``【中国移动】`` → ``【中国移动】``."""
    name = signature.strip().removeprefix("【").removesuffix("】").strip()
    if not name:
        raise ValueError("the signature is empty")
    return f"【{name}】"


def has_signature(text: str) -> bool:
    """True when ``text`` starts or ends with a ``【...】`` signature."""
    text = text.strip()
    if text.startswith("【") and _SIGNATURE_START.match(text):
        return True
    return text.endswith("】") and bool(_SIGNATURE_END.search(text))


def with_signature(text: str, signature: str) -> str:
    """``text`` with ``signature`` in front (not doubled if it is already there)."""
    mark = signature_mark(signature)
    body = text.strip()
    return body if body.startswith(mark) else mark + body


def has_unsubscribe_route(text: str, unsubscribe_text: str) -> bool:
    """True when ``text`` carries ``unsubscribe_text`` or a common equivalent wording."""
    return unsubscribe_text in text or bool(UNSUBSCRIBE_ROUTE.search(text))


def with_unsubscribe_route(text: str, unsubscribe_text: str) -> str:
    """``text`` ending with the unsubscribe route, added once.

    After closing punctuation it follows directly; after Latin text (a link) a space keeps
    it out of the link; otherwise a Chinese comma separates it.
    """
    if has_unsubscribe_route(text, unsubscribe_text):
        return text
    body = text.rstrip()
    if not body or body.endswith(_CLOSING):
        return body + unsubscribe_text
    joiner = " " if body[-1].isascii() else "，"
    return f"{body}{joiner}{unsubscribe_text}"

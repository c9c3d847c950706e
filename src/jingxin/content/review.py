"""Content review of one SMS text: lexicon, links, phone numbers, signature, unsubscribe, parts.

:meth:`Reviewer.review` gives a :class:`ReviewResult`: the verdict (``pass``,
``needs-review`` or ``block``), every reason with its character span in the ORIGINAL
text, and the parts count. Any ``block`` reason blocks; otherwise any ``review`` reason
needs a person. Reason codes:

==================== ======== ==================================================
code                 severity meaning
==================== ======== ==================================================
``lexicon``          list's   a lexicon word (after normalisation: 贷*款, 貸款, ｖｘ)
``link_blocked``     block    a link to an IP address or a public URL shortener
``link_unknown``     review   a link whose domain is not in ``allowed_domains``
``phone_number``     review   a mobile, landline or 400/800 number in the text
``missing_signature`` block   no ``【Name】`` signature at the start or end
``missing_unsubscribe`` block a marketing text without an unsubscribe route
``too_long``         block    more parts than ``max_parts``
==================== ======== ==================================================

The per-message path is allocation-light: one ``str.translate``, one automaton pass whose
raw hits are decoded in a single loop, cheap regex pre-checks before the link and phone
patterns; spans are mapped back only when something matched, and reasons are filled in
without the dataclass ``__init__``. ``tests/unit/content/test_review_reference.py`` holds
the straightforward implementation this must agree with.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Literal

from jingxin.config import ContentSettings
from jingxin.content.encoding import SINGLE_LIMIT, UCS2, PartsInfo, count_parts, is_gsm7, ucs2_units
from jingxin.content.envelope import has_signature, has_unsubscribe_route
from jingxin.content.lexicon import Lexicon, build_lexicon
from jingxin.content.normalise import drop_shifts
from jingxin.content.templates import ENVIRONMENT, CompiledTemplate, compose, render_body

Verdict = Literal["pass", "needs-review", "block"]

_TLDS = "com|cn|net|org|top|xyz|cc|info|vip|io|me|tv|co|shop|site|online|club|ly|gl|link|app|hk|ink"
_LINKS = re.compile(
    r"(?P<url>(?:https?://)(?P<host>[A-Za-z0-9.-]+)(?::\d+)?(?:/[!-~]*)?"
    rf"|(?<![A-Za-z0-9@.])(?P<bare>(?:[A-Za-z0-9-]+\.)+(?:{_TLDS}))(?![A-Za-z0-9])(?:/[!-~]*)?)"
)
_PHONES = re.compile(
    r"(?<![0-9])(?:(?:\+?86[- ]?)?1[3-9][0-9]{9}|0[1-9][0-9]{1,2}-?[0-9]{7,8}"
    r"|[48]00-?[0-9]{3}-?[0-9]{4})(?![0-9])"
)
# Patterns that open with a literal or a character class let re skip ahead quickly; the
# full patterns above, tried at every position, cost ~10x more. So they only run where
# these cheap ones say a link (a scheme, a dot before a letter) or a long number may be.
_LINK_HINT = re.compile(r"://|\.[A-Za-z]")
_NUMBER_RUN = re.compile(r"[+0-9][0-9 +-]{5,}[0-9]")
# Either of the two, in one scan: most texts have neither, and then one search is enough.
_ANY_HINT = re.compile(r"://|\.[A-Za-z]|[+0-9][0-9 +-]{5,}[0-9]")
_IP_HOST = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
SHORTENERS = frozenset(
    {"t.cn", "url.cn", "dwz.cn", "suo.im", "bit.ly", "tinyurl.com", "goo.gl", "is.gd", "w.url.cn"}
)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a text is not a plain pass; ``span`` is ``[start, end)`` of the original text."""

    code: str
    severity: str  # block | review
    message: str
    span: tuple[int, int] | None = None
    category: str | None = None

    def describe(self) -> str:
        where = f" at {self.span[0]}-{self.span[1]}" if self.span else ""
        return f"{self.code}{where}: {self.message}"


@dataclass(frozen=True)
class ReviewResult:
    """The verdict on one text, every reason, and its parts."""

    text: str
    verdict: Verdict
    reasons: tuple[Reason, ...]
    parts: PartsInfo = field(repr=False)


def _verdict(reasons: Sequence[Reason]) -> Verdict:
    if not reasons:
        return "pass"
    for reason in reasons:
        if reason.severity == "block":
            return "block"
    return "needs-review"


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
# more than the rest of a hit; the hot path fills the slots (or __dict__) directly. The
# objects are the same: equality, hashing, repr and immutability come from the class.
_new = object.__new__
_SPAN = attrgetter("span")
_REASON_SLOTS = tuple(getattr(Reason, name).__set__ for name in Reason.__slots__)
_MISSING_SIGNATURE = Reason(
    "missing_signature", "block", "no 【signature】 at the start or end of the text"
)


def _result(
    text: str, verdict: Verdict, reasons: tuple[Reason, ...], parts: PartsInfo
) -> ReviewResult:
    result = _new(ReviewResult)
    fields = result.__dict__
    fields["text"] = text
    fields["verdict"] = verdict
    fields["reasons"] = reasons
    fields["parts"] = parts
    return result


_UCS2_SINGLE = SINGLE_LIMIT[UCS2]
_SINGLE_UCS2_PARTS: dict[int, PartsInfo] = {}  # units -> the same PartsInfo count_parts gives


def _parts(text: str) -> PartsInfo:
    """:func:`count_parts`, with the commonest answer (one UCS-2 part: a Chinese SMS)
    shared per unit count instead of built per message (it depends on nothing else)."""
    if len(text) <= _UCS2_SINGLE and not text.isascii() and not is_gsm7(text):
        units = ucs2_units(text)
        if units <= _UCS2_SINGLE:
            parts = _SINGLE_UCS2_PARTS.get(units)
            if parts is None:
                parts = _SINGLE_UCS2_PARTS[units] = count_parts(text)
            return parts
    return count_parts(text)


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in allowed)


class Reviewer:
    """Reviews texts against one lexicon and the content settings; build once, reuse."""

    def __init__(
        self,
        *,
        lexicon: Lexicon,
        allowed_domains: Sequence[str] = ("jx.cn",),
        unsubscribe_text: str = "回T退订",
        max_parts: int = 6,
    ) -> None:
        self.lexicon = lexicon
        self.normaliser = lexicon.normaliser
        self.allowed_domains = tuple(d.lower().strip(".") for d in allowed_domains)
        self.unsubscribe_text = unsubscribe_text
        self.max_parts = max_parts
        # Per entry, what a hit needs: built once, so a hit looks up one tuple.
        entries, descriptions, latin = lexicon.entries, lexicon.descriptions, lexicon.latin
        self._details = tuple(
            (is_latin, entry.severity, description, entry.category)
            for entry, description, is_latin in zip(entries, descriptions, latin, strict=True)
        )
        self._missing_unsubscribe = Reason(
            "missing_unsubscribe",
            "block",
            f"marketing text without an unsubscribe route (e.g. {unsubscribe_text})",
        )

    def review(
        self,
        text: str,
        *,
        category: str = "notification",
        require_signature: bool = True,
    ) -> ReviewResult:
        """Review ``text``; ``require_signature=False`` skips the signature check."""
        normalised, marked = self.normaliser.mark(text)
        reasons = self._lexicon_reasons(text, normalised, marked)
        if _ANY_HINT.search(text) is not None:
            if _LINK_HINT.search(text):
                reasons.extend(self._link_reasons(text))
            if _NUMBER_RUN.search(text):
                reasons.extend(_phone_reasons(text))
        if require_signature and not has_signature(text):
            reasons.append(_MISSING_SIGNATURE)
        if category == "marketing" and not has_unsubscribe_route(text, self.unsubscribe_text):
            reasons.append(self._missing_unsubscribe)
        parts = _parts(text)
        if parts.parts > self.max_parts:
            message = f"{parts.parts} parts; at most {self.max_parts} allowed"
            reasons.append(Reason("too_long", "block", message))
        return _result(text, _verdict(reasons) if reasons else "pass", tuple(reasons), parts)

    def _lexicon_reasons(self, text: str, normalised: str, marked: str) -> list[Reason]:
        """One reason per hit, in span order; each (word, end) is reported once already."""
        details = self._details
        set_code, set_severity, set_message, set_span, set_category = _REASON_SLOTS
        shifts: list[int] | None = None
        reasons = []
        for last, (octets, index) in self.lexicon.octet_hits(normalised):
            first = last + 1 - octets
            if first & 1:  # began mid-character: not a hit
                continue
            first >>= 1
            end = (last >> 1) + 1
            if shifts is None:  # normalised is shorter than marked iff something was dropped
                shifts = drop_shifts(marked) if len(normalised) != len(marked) else []
            if shifts:
                start, stop = (
                    first + bisect_right(shifts, first),
                    end + bisect_right(shifts, end - 1),
                )
            else:
                start, stop = first, end
            latin, severity, description, category = details[index]
            if latin and not _word_bounded(text, start, stop):
                continue
            reason = _new(Reason)  # what Reason(...) builds, without its __init__
            set_code(reason, "lexicon")
            set_severity(reason, severity)
            set_message(reason, description)
            set_span(reason, (start, stop))
            set_category(reason, category)
            reasons.append(reason)
        if len(reasons) > 1:  # the automaton reports by end; spans never tie (one word each)
            reasons.sort(key=_SPAN)
        return reasons

    def _link_reasons(self, text: str) -> list[Reason]:
        reasons = []
        for found in _LINKS.finditer(text):
            host = (found["host"] or found["bare"] or "").lower()
            if _IP_HOST.match(host) or host in SHORTENERS:
                message = f"link to {host!r} (IP address or public shortener)"
                reasons.append(Reason("link_blocked", "block", message, found.span()))
            elif not host_allowed(host, self.allowed_domains):
                message = f"link to {host!r}, not an allowed domain"
                reasons.append(Reason("link_unknown", "review", message, found.span()))
        return reasons


def _phone_reasons(text: str) -> list[Reason]:
    reasons = []
    for run in _NUMBER_RUN.finditer(text):
        # A run is maximal, so the look-arounds at its edges see what they would in text.
        for found in _PHONES.finditer(run[0]):
            span = (run.start() + found.start(), run.start() + found.end())
            message = f"phone number {found[0]!r} in the text"
            reasons.append(Reason("phone_number", "review", message, span))
    return reasons


def _word_bounded(text: str, start: int, end: int) -> bool:
    """A Latin word must not be the middle of a longer Latin word (``bc`` in ``abc``)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())


def static_text(compiled: CompiledTemplate) -> str:
    """A template's fixed text, each variable shown as ``〇`` (for review at submit time)."""
    from jinja2 import nodes

    tree = ENVIRONMENT.parse(compiled.body)
    pieces: list[str] = []
    for output in tree.find_all(nodes.Output):
        for node in output.nodes:
            pieces.append(node.data if isinstance(node, nodes.TemplateData) else "〇")
    return "".join(pieces)


def review_template(
    reviewer: Reviewer,
    compiled: CompiledTemplate,
    *,
    category: str,
    signature: str | None,
    values: Mapping[str, object] | None = None,
    where: str = "template",
) -> ReviewResult:
    """The review of a template as it would be sent: its fixed text (each variable shown as
    ``〇``, :func:`static_text`) or, with ``values``, its rendering; the tenant's
    ``signature`` in front and, for marketing, the unsubscribe route at the end. The
    result's ``text`` is that text. What submit, ``jingxin review --template`` and the
    API's live preview review."""
    body = static_text(compiled) if values is None else render_body(compiled, values, where=where)
    text = compose(
        body, category=category, signature=signature, unsubscribe_text=reviewer.unsubscribe_text
    )
    return reviewer.review(text, category=category)


def build_reviewer(
    settings: ContentSettings,
    *,
    extra_lexicons: Sequence[str | Path] = (),
    include_default: bool = True,
) -> Reviewer:
    """A reviewer from the ``[content]`` settings: default lists, ``lexicon_paths``, extras."""
    lexicon = build_lexicon(
        [*settings.lexicon_paths, *extra_lexicons], include_default=include_default
    )
    return Reviewer(
        lexicon=lexicon,
        allowed_domains=settings.allowed_domains,
        unsubscribe_text=settings.unsubscribe_text,
        max_parts=settings.max_parts,
    )

"""How the hall reads what a subscriber typed: one normal form for every way of typing it.

Phones type the same command many ways: ``ＫＴ１０`` (full-width), ``Kt10``, `` kt  10 ``,
``余额。``, ``查话费😀``. :func:`normalise` folds them into one form the router matches
against - NFKC (full-width digits and letters to half-width), case folding, emoji and
other symbols dropped, trimmed, inner runs of whitespace collapsed to one space, trailing
punctuation dropped. Chinese is kept as it is.
"""

from __future__ import annotations

import unicodedata

# Punctuation a subscriber adds at the end of a command ("余额。", "y!"): never part of a
# command. After NFKC the full-width forms are already ASCII (！→!, ？→?, ，→,, ～→~).
TRAILING = "。.!,、~?;；…"


def normalise(text: str) -> str:
    """``text`` as the router reads it (see the module docstring).

    A text that is nothing but punctuation keeps it: ``？`` asks for help and must not
    become the empty text. Emoji, the emoji joiner and variation selectors, and other
    symbols (``So``, ``Sk``: ``👍``, ``★``) are a space: no command is made of them, and a
    subscriber adds them anywhere. Punctuation inside a command stays (``KT10,S1001``).
    """
    plain = unicodedata.normalize("NFKC", text)
    if not plain.isascii():  # (no emoji in ASCII: the common case skips the scan)
        plain = "".join(" " if _symbol(c) else c for c in plain)
    folded = " ".join(plain.casefold().split())
    stripped = folded.rstrip(TRAILING).rstrip()
    return stripped or folded


def _symbol(char: str) -> bool:
    category = unicodedata.category(char)
    return (category in ("So", "Sk", "Cf", "Cs", "Co") or "\ufe00" <= char <= "\ufe0f"
            or char == "\u20e3")


def yuan(fen: int) -> str:
    """``fen`` as yuan the way a reply says it: ``1500`` → ``15``, ``1250`` → ``12.5``,
    ``-5`` → ``-0.05`` (exact: money is kept in fen)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    if not cents:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{cents:02d}".rstrip("0")


def data_size(mb: int) -> str:
    """A data amount as a reply says it: ``512MB``, ``1GB``, ``1.5GB``."""
    if abs(mb) < 1024:
        return f"{mb}MB"
    return f"{mb / 1024:.2f}".rstrip("0").rstrip(".") + "GB"

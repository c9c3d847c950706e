"""Text normalisation for content review, in one ``str.translate`` pass with an index map.

Spammers dodge word filters with full-width letters (ｖｘ), traditional characters (貸款),
capitals, and symbols or spaces inside words (``贷*款``, ``贷 款``, zero-width joiners).
:class:`Normaliser` folds all of these with ONE translation table over the Basic
Multilingual Plane, built once:

* full-width ASCII (U+FF01–U+FF5E) and the ideographic space → half-width;
* traditional → simplified Chinese, character by character (OpenCC ``t2s``);
* lower case, where it keeps one character as one character;
* punctuation, symbols, separators, controls and combining marks → deleted, and so is
  everything above the BMP (emoji; the rare ideographs there never appear in lexicons).

Every character maps to one character or to the mark ``\x00`` (dropped), so the marked
string lines up with the original; removing the marks gives the text to match, and a hit
is mapped back to the original span only when there is one. The common no-match path
is one C-level ``translate`` and one ``replace``.
"""

from __future__ import annotations

import sys
import unicodedata
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate

BMP = 0x10000
_DELETED_CATEGORIES = frozenset("PSZCM")  # first letter of the Unicode general category
_CJK_RANGES = ((0x3400, 0xA000), (0xF900, 0xFB00))
MARK = "\x00"  # stands for a dropped character in a marked string (NUL itself is dropped)


def _traditional_to_simplified() -> dict[int, str]:
    """One-character t2s mappings from OpenCC, converted in a single call."""
    import opencc

    chars = [chr(cp) for start, end in _CJK_RANGES for cp in range(start, end)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # OpenCC merged or split lines: fall back to one by one
        converter = opencc.OpenCC("t2s")
        converted = [converter.convert(ch) for ch in chars]
    # One BMP character to one BMP character only: the table drops output above the BMP.
    return {
        ord(a): b
        for a, b in zip(chars, converted, strict=True)
        if a != b and len(b) == 1 and ord(b) < BMP
    }


def _fold(cp: int, t2s: dict[int, str]) -> str | None:
    ch = chr(cp)
    if unicodedata.category(ch)[0] in _DELETED_CATEGORIES:
        return None
    if 0xFF01 <= cp <= 0xFF5E:
        ch = chr(cp - 0xFEE0)
    ch = t2s.get(ord(ch), ch)
    lower = ch.lower()
    return lower if len(lower) == 1 else ch


class Normaliser:
    """Folds text for matching; the same instance must normalise the lexicon and messages.

    :meth:`mark` is the hot path: it folds ``text`` character for character, writing
    ``MARK`` where a character is dropped, so the marked string lines up with the original
    and :meth:`original_span` can map a hit back without an index list per message.
    """

    def __init__(self, *, simplify: bool = True) -> None:
        t2s = _traditional_to_simplified() if simplify else {}
        # A list indexed by code point is the fastest table str.translate accepts. It
        # covers all of Unicode so translate never falls back to its slow error path:
        # everything above the BMP (emoji, rare ideographs) is dropped, like symbols.
        table: list[str] = []
        for cp in range(BMP):
            folded = None if 0xD800 <= cp < 0xE000 else _fold(cp, t2s)
            table.append(MARK if folded is None else folded)
        table.extend([MARK] * (sys.maxunicode + 1 - BMP))
        self._table = table

    def mark(self, text: str) -> tuple[str, str]:
        """(normalised, marked): ``marked`` has ``MARK`` where ``text`` had a dropped character."""
        marked = text.translate(self._table)
        return (marked.replace(MARK, "") if MARK in marked else marked), marked

    def normalise(self, text: str) -> str:
        """``text`` folded and stripped of symbols, in one pass."""
        return self.mark(text)[0]

    def index_map(self, text: str) -> list[int]:
        """``kept`` with ``normalise(text)[i]`` coming from ``text[kept[i]]``."""
        return [i for i, ch in enumerate(self.mark(text)[1]) if ch != MARK]

    @staticmethod
    def original_span(marked: str, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that normalised ``[start, end)`` came from."""
        shifts = drop_shifts(marked)
        return original_index(shifts, start), original_index(shifts, end - 1) + 1


def drop_shifts(marked: str) -> list[int]:
    """For the j-th dropped character at index d: ``d - j``, the kept characters before it.

    The list is non-decreasing, so the number of dropped characters before the p-th kept
    one is ``bisect_right(shifts, p)``: mapping a hit back costs one C-level bisect.
    """
    # The kept runs between marks, summed: split, map and accumulate all run in C.
    return list(accumulate(map(len, marked.split(MARK)[:-1])))


def original_index(shifts: list[int], position: int) -> int:
    """Index in the original text of the ``position``-th kept character."""
    return position + bisect_right(shifts, position)


@lru_cache(maxsize=2)
def default_normaliser(simplify: bool = True) -> Normaliser:
    """The shared normaliser (building the table takes a few hundredths of a second)."""
    return Normaliser(simplify=simplify)

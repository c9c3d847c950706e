"""Bounds on one field under an ``all`` group, to tell a spec that can never match.

Only the simple, certain cases: equalities that disagree, a lower bound above an upper
bound, ``in`` sets with nothing in common, ``is_null`` beside a comparison. Anything
subtler is left to the count (which says "matches nothing" too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Bounds:
    lo: Any = None
    lo_strict: bool = False
    hi: Any = None
    hi_strict: bool = False
    allowed: set[Any] | None = None
    null: bool | None = None
    excluded: set[Any] = field(default_factory=set)

    def _lower(self, v: Any, strict: bool) -> None:
        if self.lo is None or v > self.lo or (v == self.lo and strict):
            self.lo, self.lo_strict = v, strict

    def _upper(self, v: Any, strict: bool) -> None:
        if self.hi is None or v < self.hi or (v == self.hi and strict):
            self.hi, self.hi_strict = v, strict

    def _allow(self, values: set[Any]) -> None:
        self.allowed = values if self.allowed is None else self.allowed & values

    def add(self, op: str, value: Any) -> None:
        if op == "eq":
            self._allow({value})
        elif op == "in":
            self._allow(set(value))
        elif op == "ne":
            self.excluded.add(value)
        elif op == "not_in":
            self.excluded |= set(value)
        elif op in ("gt", "ge"):
            self._lower(value, op == "gt")
        elif op in ("lt", "le"):
            self._upper(value, op == "lt")
        elif op == "between":
            self._lower(value[0], False)
            self._upper(value[1], False)
        elif op in ("is_null", "not_null"):
            want = op == "is_null"
            self.null = want if self.null in (None, want) else "both"  # type: ignore[assignment]

    def _inside(self, v: Any) -> bool:
        try:
            if self.lo is not None and (v < self.lo or (v == self.lo and self.lo_strict)):
                return False
            if self.hi is not None and (v > self.hi or (v == self.hi and self.hi_strict)):
                return False
        except TypeError:
            return True
        return v not in self.excluded

    def empty(self) -> bool:
        if self.null == "both":
            return True
        has_value_test = self.allowed is not None or self.lo is not None or self.hi is not None
        if self.null is True and has_value_test:
            return True
        if self.allowed is not None:
            return not any(self._inside(v) for v in self.allowed)
        if self.lo is not None and self.hi is not None:
            try:
                if self.lo > self.hi:
                    return True
                return self.lo == self.hi and (self.lo_strict or self.hi_strict)
            except TypeError:
                return False
        return False

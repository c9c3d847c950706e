"""Local hours and durations as staff write them: ``"07:00-22:00"`` (a list of such; one
that starts after it ends wraps midnight) as local minutes ``(420, 1320)``, and a dwell
of ``300``, ``"90s"``, ``"5m"`` or ``"1h30m"`` as seconds.

The errors are ValueErrors: pydantic turns them into the field's message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_DURATION = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?$")


def parse_hours(value: Any) -> tuple[tuple[int, int], ...]:
    """``"07:00-22:00"`` or a list of such as local minutes ``((420, 1320),)``; empty or
    absent: all day; ``"22:00-06:00"`` wraps midnight (start > end)."""
    if value is None or value == "" or value == []:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError('hours are "HH:MM-HH:MM" or a list of such')  # noqa: TRY004 (pydantic)
    out = []
    for item in items:
        match = _HOURS.match(str(item).strip())
        if not match:
            raise ValueError(f'{item!r}: hours are "HH:MM-HH:MM", e.g. "07:00-22:00"')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise ValueError(f"{item!r}: not a time of day")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(f"{item!r}: starts where it ends (leave hours out for all day)")
        out.append((start, end))
    return tuple(out)


def hours_text(hours: Sequence[tuple[int, int]]) -> list[str]:
    """``[(420, 1320)]`` -> ``["07:00-22:00"]``."""
    return [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in hours]


def parse_duration(value: Any) -> int:
    """Seconds of ``300``, ``"90s"``, ``"5m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")  # noqa: TRY004 (pydantic)
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        match = _DURATION.match(text) if text else None
        if text.isdigit():
            seconds = int(text)
        elif match and any(match.groups()):
            h, m, s = (int(g or 0) for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        else:
            raise ValueError(f"{value!r} is not a duration (e.g. 300, 90s, 5m, 1h30m)")
    if not 0 <= seconds <= 86_400:
        raise ValueError(f"{value!r}: a dwell is 0 to 24 hours")
    return seconds

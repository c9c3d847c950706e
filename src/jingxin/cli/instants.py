"""One reading of ``--at``-style options for every command.

A staff member types times in the operator's own zone, so an ISO date-time without an
offset is read in ``[policy] default_timezone`` (Asia/Shanghai unless configured); one with
an offset (``+08:00``, ``Z``) means exactly that instant. ``policy decide --at`` and
``campaign run --at`` used to disagree (UTC versus Beijing time) about the bare form.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jingxin.errors import InputError

EXAMPLE = "2026-10-08T10:00:00+08:00"


def parse_instant(text: str, *, option: str = "--at", zone: str | None = None) -> datetime:
    """``text`` as an aware datetime; a bare one is in ``zone`` (default: the settings')."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not an ISO date-time ({EXAMPLE})") from None
    if when.tzinfo is not None:
        return when
    if zone is None:
        from jingxin.config import load_settings

        zone = load_settings().policy.default_timezone
    return when.replace(tzinfo=ZoneInfo(zone))

"""Every trigger of the daily scan, by name, in the order the scan runs them.

Each entry is ``"module:attribute"``, imported when the scan needs it, so a scan that
runs one trigger does not import the others. A trigger is any object with a ``name`` and
``candidates(ctx) -> TriggerOutput`` (:mod:`jingxin.journeys.trigger`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from jingxin.errors import ConfigError

if TYPE_CHECKING:
    from jingxin.journeys.trigger import Trigger

TRIGGERS: dict[str, str] = {
    "birthday": "jingxin.journeys.triggers.lifecycle:BIRTHDAY",
    "anniversary": "jingxin.journeys.triggers.lifecycle:ANNIVERSARY",
    "renewal": "jingxin.journeys.triggers.renewal:RENEWAL",
    "holiday": "jingxin.journeys.triggers.holiday:HOLIDAY",
    "usage": "jingxin.journeys.triggers.usage:USAGE",
    "plan_mismatch": "jingxin.journeys.triggers.usage:PLAN_MISMATCH",
    "roaming": "jingxin.journeys.triggers.roaming:ROAMING",
    "query_tail": "jingxin.journeys.triggers.tail:QUERY_TAIL",
    "abandoned_order": "jingxin.journeys.triggers.abandoned:ABANDONED_ORDER",
    "gift_followup": "jingxin.journeys.gifts:GIFT_FOLLOWUP",
}


def trigger(name: str) -> Trigger:
    """The trigger called ``name``; an unknown name is a ConfigError listing the known."""
    where = TRIGGERS.get(name)
    if where is None:
        raise ConfigError(f"journeys.triggers: unknown trigger {name!r} "
                          f"(known: {', '.join(TRIGGERS)})")  # fmt: skip
    module, attribute = where.split(":")
    return getattr(importlib.import_module(module), attribute)


def wanted(names: list[str] | None) -> list[str]:
    """The triggers to run: ``names`` (checked) or, empty, all of them."""
    unknown = [name for name in names or () if name not in TRIGGERS]
    if unknown:
        raise ConfigError(f"journeys.triggers: unknown trigger(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(TRIGGERS)})")  # fmt: skip
    return list(names) if names else list(TRIGGERS)

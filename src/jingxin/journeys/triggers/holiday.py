"""HOLIDAY: on a festival's greeting day, every active subscriber gets its greeting.

Which festival (if any) is greeted on the day is decided in Python from the calendar
(:mod:`jingxin.journeys.calendar`: lunar dates, solar terms, ``send_days_before``); who
gets it is one warehouse query (``subscribers`` with status ``active``), which also
addresses each subscriber as the lifecycle triggers do (the warehouse holds no names:
尊敬的先生 / 尊敬的女士 / 尊敬的客户 by gender). The festival's own values are the same for
everyone and are appended to the query's answer as constant Arrow columns.

A template that shows the official days off (``off_from``, ``off_to``, ``off_days``,
``makeup_workdays``) needs the year's official schedule: without one (chinese-calendar
does not know the year and the holiday file does not list it) the festival's ``fallback``
is sent instead and the output carries a warning naming the setting that fixes it; with
no fallback the trigger fails with that message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jingxin.errors import ConfigError
from jingxin.journeys.calendar import (
    DAYS_OFF_VARIABLES,
    Festival,
    festival_due,
    missing_schedule,
    official_schedule,
    with_days_off,
)
from jingxin.journeys.trigger import TriggerContext, TriggerOutput

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.warehouse.connection import Warehouse

SUBSCRIBER = pa.schema([("msisdn", pa.string()), ("subscriber_id", pa.int64()),
                        ("name", pa.string())])  # fmt: skip
SCHEMA = SUBSCRIBER.append(pa.field("template", pa.string()))
ARROW_TYPES: dict[type, pa.DataType] = {str: pa.string(), int: pa.int64(),
                                        float: pa.float64(), date: pa.date32()}  # fmt: skip


@dataclass(frozen=True)
class Greeting:
    """The template a festival is greeted with this year, its values (the same for
    everyone), whether it addresses the subscriber by ``name``, and any warning."""

    template: str
    values: Mapping[str, Any]
    addressed: bool = True
    warning: str | None = None


def holiday_file(settings: Settings) -> Path | None:
    """``[journeys] holiday_file``, a relative path taken under the settings' home."""
    named = settings.journeys.holiday_file
    return None if named is None else Path(settings.home) / named


def declared_variables(ctx: TriggerContext, code: str) -> Mapping[str, str]:
    """The variables ``code`` declares: the approved version's when the scan has a store
    (the one that will be rendered), else the starter library's."""
    if ctx.store is not None:
        from jingxin.dispatch.approval import load_approved

        tenant = ctx.settings.journeys.tenant
        return load_approved(ctx.store, tenant_id=tenant, code=code).compiled.variables
    from jingxin.content.library import library_document

    document = library_document(code)
    if document is None:
        raise ConfigError(f"holiday: template {code!r} is not in the starter library "
                          "(and the scan has no store to find it in)")  # fmt: skip
    return document.variables


def _known_values(festival: Festival, settings: Settings) -> dict[str, Any]:
    """Every value the trigger can fill a greeting with but ``name`` (the warehouse's)."""
    values: dict[str, Any] = {"festival": festival.name,
                              "year": festival.day.year, "zodiac": festival.zodiac,
                              "hall_number": settings.journeys.hall_number}  # fmt: skip
    values.update(festival.values)
    if festival.days_off is not None:
        values.update(festival.days_off.values())
    return values


def greeting(festival: Festival, ctx: TriggerContext) -> Greeting:
    """The template and values ``festival`` is greeted with on ``ctx.day``."""
    code, warning = festival.template, None
    declared = declared_variables(ctx, code)
    if DAYS_OFF_VARIABLES & set(declared):
        where = holiday_file(ctx.settings)
        schedule = official_schedule(festival.day.year, holiday_file=where)
        festival = with_days_off(festival, schedule)
        if festival.days_off is None:
            why = (missing_schedule(festival.day.year, where) if schedule is None else
                   f"the official holiday schedule for {festival.day.year} ({schedule.source}) "
                   f"has no days off on {festival.day} ({festival.name})")  # fmt: skip
            if festival.fallback is None:
                raise ConfigError(f"holiday: {why}; template {code} shows the days off "
                                  "and the festival has no fallback")  # fmt: skip
            warning = f"{why}: {festival.name} is greeted with {festival.fallback} instead"
            code = festival.fallback
            declared = declared_variables(ctx, code)
    known = _known_values(festival, ctx.settings)
    unknown = sorted(set(declared) - set(known) - {"name"})
    if unknown:
        raise ConfigError(f"holiday: template {code} needs {', '.join(map(repr, unknown))}, "
                          f"which the holiday trigger does not fill "
                          f"(it fills: name, {', '.join(sorted(known))})")  # fmt: skip
    values = {n: known[n] for n in declared if n != "name"}
    return Greeting(template=code, values=values, addressed="name" in declared, warning=warning)


def active_subscribers(warehouse: Warehouse) -> pa.Table:
    """Every active subscriber's number, id and form of address, from the warehouse."""
    from jingxin.audience.source import read
    from jingxin.journeys.triggers.lifecycle import salutation

    subscribers = read(warehouse, "subscribers",
                       columns=("subscriber_id", "msisdn", "status", "gender"))  # fmt: skip
    active = subscribers.filter(subscribers.status == "active")
    table = active.select("msisdn", "subscriber_id", name=salutation(active.gender))
    return table.to_pyarrow().cast(SUBSCRIBER)


def _with_constants(table: pa.Table, greeting: Greeting) -> pa.Table:
    """``table`` with the template and each festival value as a column repeated on every
    row (``name`` is the table's own, and dropped when the template does not use it)."""
    if not greeting.addressed:
        table = table.drop_columns(["name"])
    for name, value in {"template": greeting.template, **greeting.values}.items():
        kind = ARROW_TYPES.get(type(value))
        if kind is None:
            raise ConfigError(f"holiday: value {name}={value!r} has no column type")
        table = table.append_column(pa.field(name, kind),
                                    pa.repeat(pa.scalar(value, kind), table.num_rows))  # fmt: skip
    return table


@dataclass(frozen=True)
class HolidayTrigger:
    """The festival greeting of the day: nobody on a day without one."""

    name: str = "holiday"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        festival = festival_due(ctx.day)
        if festival is None:
            return TriggerOutput(candidates=SCHEMA.empty_table())
        chosen = greeting(festival, ctx)
        table = _with_constants(active_subscribers(ctx.warehouse), chosen)
        return TriggerOutput(candidates=table, warning=chosen.warning)


HOLIDAY = HolidayTrigger()

"""Birthday and network-entry anniversary: the lifecycle triggers a calendar date decides.

Both read ``subscribers`` in the warehouse as of the scan's day and pick, in one Ibis
expression, the active subscribers whose date (``birthday``, ``entry_date``) falls on
that day of the year. A 29 February date is celebrated on 28 February in a year without
one, so nobody born (or joined) on a leap day goes a year without a message.

The warehouse holds no names, only ``gender``: every message opens with a polite form of
address instead (:func:`salutation`: 尊敬的先生 / 尊敬的女士, and 尊敬的客户 when the gender
is unknown), so no message ever shows an empty or made-up name.

Skipped (counted, never an error): active subscribers without a birth date
(``no_birthday``). An impossible one (02-30) cannot be in a DATE column: ``jingxin
import`` rejects its row, naming the field, and a file loaded another way leaves it null -
counted here as ``no_birthday`` too.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import ibis

from jingxin.journeys.trigger import TriggerContext, TriggerOutput

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["ANNIVERSARY", "BIRTHDAY", "AnniversaryTrigger", "BirthdayTrigger", "falls_on",
           "salutation"]  # fmt: skip

SUBSCRIBER_COLUMNS = ("subscriber_id", "msisdn", "status", "gender", "birthday", "entry_date")


def salutation(gender: ir.StringValue) -> ir.StringValue:
    """How a message addresses a subscriber whose name the warehouse does not hold."""
    return ibis.cases((gender == "M", "尊敬的先生"), (gender == "F", "尊敬的女士"),
                      else_="尊敬的客户")  # fmt: skip


def falls_on(column: ir.DateValue, day: date) -> ir.BooleanValue:
    """Whether the date in ``column`` has ``day``'s month and day; on 28 February of a
    year without a 29th, 29 February dates count too."""
    pairs = [(day.month, day.day)]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        pairs.append((2, 29))
    month, day_of_month = column.month(), column.day()
    return ibis.or_(*[(month == m) & (day_of_month == d) for m, d in pairs])


def active_subscribers(ctx: TriggerContext) -> ir.Table:
    """The warehouse's active subscribers, with the columns these triggers read checked."""
    from jingxin.audience.source import read

    subscribers = read(ctx.warehouse, "subscribers", columns=SUBSCRIBER_COLUMNS)
    return subscribers.filter(subscribers.status == "active")


@dataclass(frozen=True)
class BirthdayTrigger:
    """A birthday wish with a data gift, for every active subscriber born on the day
    (whatever their star level)."""

    name: str = "birthday"
    template: str = "care.birthday"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        active = active_subscribers(ctx)
        born = active.filter(active.birthday.notnull() & falls_on(active.birthday, ctx.day))
        table = born.select(
            "msisdn", "subscriber_id", template=ibis.literal(self.template),
            name=salutation(born.gender),
            gift_data_mb=ibis.literal(ctx.settings.journeys.gift_data_mb, "int64"),
        ).order_by("subscriber_id").to_pyarrow()  # fmt: skip
        output = TriggerOutput(candidates=table)
        unknown = active.filter(active.birthday.isnull()).count().to_pyarrow().as_py()
        if unknown:
            output.skipped["no_birthday"] = unknown
        return output


@dataclass(frozen=True)
class AnniversaryTrigger:
    """Thanks and a gift (voice and data, claimed by replying LB before ``claim_by``) for
    every active subscriber who joined the network one or more whole years ago today."""

    name: str = "anniversary"
    template: str = "care.anniversary"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        journeys = ctx.settings.journeys
        active = active_subscribers(ctx)
        years = ibis.literal(ctx.day.year) - active.entry_date.year()
        joined = active.filter(falls_on(active.entry_date, ctx.day) & (years >= 1))
        table = joined.select(
            "msisdn", "subscriber_id", template=ibis.literal(self.template),
            name=salutation(joined.gender),
            years=(ibis.literal(ctx.day.year) - joined.entry_date.year()).cast("int64"),
            gift_voice=ibis.literal(journeys.gift_voice_min, "int64"),
            gift_data_mb=ibis.literal(journeys.gift_data_mb, "int64"),
            claim_by=ibis.literal(ctx.day + timedelta(days=journeys.claim_days), "date"),
        ).order_by("subscriber_id").to_pyarrow()  # fmt: skip
        return TriggerOutput(candidates=table)


BIRTHDAY = BirthdayTrigger()
ANNIVERSARY = AnniversaryTrigger()

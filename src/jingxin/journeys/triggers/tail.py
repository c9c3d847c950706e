"""The query tail: a subscriber who queried through another channel yesterday gets one SMS
teaching the SMS business hall's codes for the same questions.

Who (computed in the warehouse, Ibis, over ``channel_contacts``): a contact with purpose
``query`` through the hotline, a hall, the app or the web (not ``sms_hall``: they know it
already) on day D-1. The warehouse records the purpose as ``query`` only, not balance,
usage or plan, so the message teaches the three query codes (``YE`` balance, ``LL`` usage,
``TC`` plan) and ``0`` for the whole menu, sent to ``[journeys] hall_number``; it names
the channel they used last that day.

Once per subscriber per 30 days, decided from the warehouse alone: a subscriber who also
queried (through those channels) in the 30 days before D-1 is skipped as
``recent_query``. Two tails are therefore always at least 30 days apart, re-running a
day gives the same answer without reading what was sent, and a subscriber who queries
every week is taught once, at the start, rather than every month. Also skipped: who used
the SMS hall in the last 90 days (``uses_sms_hall``) and churned numbers (``churned``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.journeys.trigger import TriggerContext, TriggerOutput
from jingxin.journeys.triggers.lifecycle import salutation

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.data.warehouse.connection import Warehouse

TEMPLATE = "care.query_tail"
CHANNEL_NAMES = {"hotline": "客服热线", "hall": "营业厅", "app": "手机营业厅App",
                 "web": "网上营业厅"}  # fmt: skip


@dataclass(frozen=True)
class QueryTailTrigger:
    """Teaches yesterday's querying subscribers the SMS-hall codes (module docstring)."""

    name: str = "query_tail"
    once_per_days: int = 30
    sms_hall_days: int = 90  # used the SMS hall this recently: nothing to teach

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        found = queried(ctx.warehouse, day=ctx.day, once_per_days=self.once_per_days,
                        sms_hall_days=self.sms_hall_days).to_pyarrow()  # fmt: skip
        reasons = found["reason"]
        skipped = Counter(
            {r["values"].as_py(): r["counts"].as_py() for r in pc.value_counts(reasons)})
        skipped.pop(None, None)
        chosen = found.filter(pc.is_null(reasons)).sort_by("msisdn")
        n = chosen.num_rows
        candidates = pa.table({
            "msisdn": chosen["msisdn"], "subscriber_id": chosen["subscriber_id"],
            "template": pa.repeat(pa.scalar(TEMPLATE), n), "name": chosen["name"],
            "channel": chosen["channel"],
            "hall_number": pa.repeat(pa.scalar(ctx.settings.journeys.hall_number), n),
        })  # fmt: skip
        return TriggerOutput(candidates=candidates, skipped=skipped)


def queried(warehouse: Warehouse, *, day: date, once_per_days: int,
            sms_hall_days: int) -> ir.Table:  # fmt: skip
    """One row per subscriber who queried through a taught channel on the day before
    ``day``: ``subscriber_id``, ``msisdn``, ``name`` (the salutation), ``channel`` (the
    name of the last one used) and ``reason`` (null: send; else why not)."""
    import ibis

    start = datetime.combine(day - timedelta(days=1), time())
    end = start + timedelta(days=1)
    contacts = warehouse.table("channel_contacts")
    queries = contacts.filter((contacts.purpose == "query")
                              & contacts.channel.isin(list(CHANNEL_NAMES)))  # fmt: skip
    yesterday = queries.filter((queries.ts >= start) & (queries.ts < end))
    last = yesterday.group_by("subscriber_id").aggregate(
        channel=yesterday.channel.argmax(yesterday.ts))  # ties: any of them, a name only
    earlier = queries.filter((queries.ts >= start - timedelta(days=once_per_days))
                             & (queries.ts < start))  # fmt: skip
    earlier = earlier.select("subscriber_id").distinct().mutate(recent=ibis.literal(True))
    hall = contacts.filter((contacts.channel == "sms_hall")
                           & (contacts.ts >= end - timedelta(days=sms_hall_days))
                           & (contacts.ts < end))  # fmt: skip
    hall = hall.select("subscriber_id").distinct().mutate(sms_hall=ibis.literal(True))
    subscribers = warehouse.table("subscribers")
    subscribers = subscribers.select("subscriber_id", "msisdn", "status",
                                     name=salutation(subscribers.gender))  # fmt: skip
    t = last.inner_join(subscribers, "subscriber_id")
    t = t.left_join(earlier, "subscriber_id").drop("subscriber_id_right")
    t = t.left_join(hall, "subscriber_id").drop("subscriber_id_right")
    reason = ibis.cases((t.status == "churned", "churned"),
                        (t.sms_hall.notnull(), "uses_sms_hall"),
                        (t.recent.notnull(), "recent_query"),
                        else_=ibis.null("string"))  # fmt: skip
    return t.select("subscriber_id", "msisdn", "name", channel=t.channel.substitute(CHANNEL_NAMES),
                    reason=reason)  # fmt: skip


QUERY_TAIL = QueryTailTrigger()

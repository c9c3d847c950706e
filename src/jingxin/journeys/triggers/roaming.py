"""The roaming welcome: a subscriber seen in another country, or another province, for the
first time in a while gets the destination's pack (the season's weather, entry rules, a
safety tip, the emergency number, the roaming tariff) from the knowledge table
(:mod:`jingxin.journeys.knowledge`).

Who arrived (computed in the warehouse, Ibis):

* **abroad** - the subscriber's first ``location_events`` row of day D in a country other
  than CN, with no event in that country in the ``quiet_days`` (7) days before D: a trip,
  not a cross-border commuter's daily crossing;
* **another province** - the first event of day D in a cell whose ``cells.district`` is
  not one of the operator's own districts (those its subscribers are billed in,
  ``subscribers.region``), same quiet rule. The district is named as a destination by the
  first domestic entry of the knowledge table whose ``match`` prefix it starts with; an
  unmatched one keeps its district name, so it is skipped as ``no_knowledge:<district>``.

  Limitation, said plainly: the warehouse has no province column. A provincial operator's
  ``cells`` table covers its own province only, and its feed shows a subscriber in another
  province as a gap (the synthetic operator: Shanghai's sixteen districts, a domestic trip
  leaves no events), so there is nothing to welcome them by. Domestic welcomes come from
  a feed that carries the cells of other provinces (a national cell table), or live from
  the geofence matcher once it exists; ``usage_monthly.roaming_days_domestic`` counts days
  per month and cannot say when or where a subscriber arrived.

A subscriber who arrived in two places on D (a transit in Hong Kong, then Japan) is
welcomed once, to the later one. Destinations are joined to the table in Arrow on the
(small) list of arrivals; a destination the table lacks skips its subscribers with
``no_knowledge:<code>`` and the trigger's warning names the codes.

The local time the message quotes is when the scan wants it (the day's ``[journeys]
send_at`` in the operator's time, or now once that has passed) at the destination's
reference city; policy may still defer it (quiet hours), which the text cannot know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.data.store.models import utc_now
from jingxin.journeys.knowledge import Destination, Knowledge, load_knowledge
from jingxin.journeys.trigger import TriggerContext, TriggerOutput
from jingxin.journeys.triggers.lifecycle import salutation

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.data.warehouse.connection import Warehouse

INTERNATIONAL = "care.roaming_international"
DOMESTIC = "care.roaming_domestic"
HOME = "CN"
# A destination's pack: both templates' variables but the salutation ("name").
PACK_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "destination", "template", "country", "local_time", "weather", "pack_name", "police",
    "customs_tip", "city", "temp_range", "hall_address", "tip")]
    + [("pack_daily", pa.decimal128(12, 2))])  # fmt: skip


def arrivals(warehouse: Warehouse, *, day: date, quiet_days: int,
             domestic: tuple[Destination, ...] = ()) -> ir.Table:  # fmt: skip
    """One row per subscriber who arrived somewhere on ``day``: ``subscriber_id``,
    ``msisdn``, ``name`` (the salutation), ``destination`` (a country code, a domestic
    destination's code or an unmatched district) and ``arrived_at`` (module docstring)."""
    import ibis

    start = datetime.combine(day, time())
    since, end = start - timedelta(days=quiet_days), start + timedelta(days=1)
    events = warehouse.table("location_events")
    e = events.filter((events.ts >= since) & (events.ts < end))
    abroad = e.filter(e.country != HOME).select("subscriber_id", "ts", destination=e.country)
    shape = {"subscriber_id": "int64", "ts": "timestamp", "destination": "string"}
    # One shape for both sides (a column's nullability differs between them otherwise).
    seen = abroad.cast(shape).union(_elsewhere_in_china(warehouse, e, domestic).cast(shape))
    today = seen.filter(seen.ts >= start)
    firsts = today.group_by(["subscriber_id", "destination"]).aggregate(arrived_at=today.ts.min())
    before = seen.filter(seen.ts < start).select("subscriber_id", "destination").distinct()
    new = firsts.anti_join(before, ["subscriber_id", "destination"])
    latest = ibis.window(group_by=new.subscriber_id,
                         order_by=[ibis.desc(new.arrived_at), new.destination])  # fmt: skip
    ranked = new.mutate(rank=ibis.row_number().over(latest))
    one = ranked.filter(ranked.rank == 0).drop("rank")
    subscribers = warehouse.table("subscribers")
    subscribers = subscribers.select("subscriber_id", "msisdn",
                                     name=salutation(subscribers.gender))  # fmt: skip
    return one.inner_join(subscribers, "subscriber_id").select(
        "subscriber_id", "msisdn", "name", "destination", "arrived_at")


def _elsewhere_in_china(warehouse: Warehouse, events: ir.Table,
                        domestic: tuple[Destination, ...]) -> ir.Table:  # fmt: skip
    """Events at home-country cells outside the operator's own districts, each with its
    destination: the first domestic entry whose prefix the district starts with, else the
    district itself."""
    import ibis

    cells = warehouse.table("cells")
    subscribers = warehouse.table("subscribers")
    own = subscribers.select(district=subscribers.region).distinct()
    away = cells.anti_join(own, cells.district == own.district)
    branches = [(away.district.startswith(prefix), d.code) for d in domestic for prefix in d.match]
    named = ibis.cases(*branches, else_=away.district) if branches else away.district
    away = away.select("cell_id", destination=named)
    home = events.filter(events.country == HOME)
    return home.inner_join(away, "cell_id").select("subscriber_id", "ts", "destination")


@dataclass(frozen=True)
class RoamingTrigger:
    """Welcomes subscribers to the country or province they arrived in (module docstring)."""

    name: str = "roaming"
    quiet_days: int = 7  # no event in the destination this many days before: a new arrival
    clock: Callable[[], datetime] = utc_now  # the local time quoted is never before now

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        from jingxin.journeys.scan import wanted_at as scan_wanted_at

        knowledge = load_knowledge(ctx.settings.journeys.knowledge_path)
        arrived = arrivals(ctx.warehouse, day=ctx.day, quiet_days=self.quiet_days,
                           domestic=knowledge.domestic).to_pyarrow()  # fmt: skip
        wanted_at = scan_wanted_at(ctx.settings, day=ctx.day, now=self.clock())
        packs = destination_packs(knowledge, codes=pc.unique(arrived["destination"]).to_pylist(),
                                  day=ctx.day, at=wanted_at)  # fmt: skip
        joined = arrived.join(packs, keys="destination", join_type="left outer")
        known = pc.is_valid(joined["template"])
        missing = dict(_counts(joined.filter(pc.invert(known)), "destination"))
        skipped = Counter({f"no_knowledge:{code}": n for code, n in missing.items()})
        candidates = joined.filter(known).sort_by("msisdn")
        warning = (f"roaming: no knowledge of {', '.join(sorted(missing))} in "
                   f"{knowledge.source} ({sum(missing.values())} subscriber(s) skipped)"
                   if missing else None)  # fmt: skip
        return TriggerOutput(candidates=candidates.drop_columns(["destination", "arrived_at"]),
                             skipped=skipped, warning=warning)  # fmt: skip


def destination_packs(knowledge: Knowledge, *, codes: list[str], day: date,
                      at: datetime) -> pa.Table:  # fmt: skip
    """One row per code the table knows: its template and that template's variables (the
    other template's columns null), for a message on ``day`` wanted at ``at``."""
    rows = []
    for code in sorted(codes):
        destination = knowledge.get(code)
        if destination is None:
            continue
        if destination.kind == "international":
            template, values = INTERNATIONAL, international_values(destination, day=day, at=at)
        else:
            template, values = DOMESTIC, domestic_values(destination, day=day)
        rows.append({"destination": code, "template": template, **values})
    return pa.Table.from_pylist(rows, schema=PACK_SCHEMA)


def international_values(destination: Destination, *, day: date,
                         at: datetime) -> dict[str, Any]:  # fmt: skip
    """The variables of ``care.roaming_international`` for ``destination`` on ``day``, the
    message wanted at ``at``."""
    assert destination.roaming is not None and destination.timezone is not None
    local = at.astimezone(ZoneInfo(destination.timezone))
    climate = destination.season(day)
    return {
        "country": destination.name,
        "local_time": local.strftime("%H:%M"),
        "weather": f"{destination.city}一带{climate.note}，气温约{climate.low}到{climate.high}度",
        "pack_name": destination.roaming.pack,
        "pack_daily": Decimal(destination.roaming.daily_fen) / 100,
        "police": destination.police,
        "customs_tip": f"{destination.customs}{destination.safety}",
    }


def domestic_values(destination: Destination, *, day: date) -> dict[str, Any]:
    """The variables of ``care.roaming_domestic`` for ``destination`` on ``day``."""
    climate = destination.season(day)
    return {"city": destination.name, "weather": climate.note,
            "temp_range": f"气温约{climate.low}到{climate.high}度",
            "hall_address": destination.hall_address, "tip": destination.tip}  # fmt: skip


def _counts(table: pa.Table, column: str) -> list[tuple[str, int]]:
    if table.num_rows == 0:
        return []
    counted = pc.value_counts(table[column])
    return [(c["values"].as_py(), c["counts"].as_py()) for c in counted]


ROAMING = RoamingTrigger()

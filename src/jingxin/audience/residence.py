"""Resident cells from ``location_events``: home and work.

Dwell in a cell is the time until the subscriber's next event, capped (a phone that goes
quiet overnight has not stayed in one cell for ten hours as far as we can tell; the cap
keeps one silent gap from outweighing a week of evenings). A dwell counts toward *home*
when its event starts at night (21:00-07:00) and toward *work* when it starts on a weekday
during office hours (09:00-18:00). Home/work is the cell with the largest total; ties go to
the smaller cell id so that every engine picks the same cell. Events abroad are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from jingxin.audience.window import AsOf


@dataclass(frozen=True)
class ResidenceParams:
    days: int = 14  # look-back window before as_of
    cap_seconds: int = 4 * 3600  # longest dwell credited to one event
    last_event_seconds: int = 1800  # dwell of a subscriber's last event in the window
    night: tuple[int, int] = (21, 7)  # [21:00, 07:00)
    office: tuple[int, int] = (9, 18)  # [09:00, 18:00) on Monday-Friday


def dwell(*, events: ir.Table, window: AsOf, params: ResidenceParams) -> ir.Table:
    """Events in the window with ``dwell_s``, ``hour`` and ``weekday`` (Monday = 0)."""
    e = events.filter((events.ts >= window.days_back(params.days)) & (events.ts < window.end)
                      & (events.country == "CN"))
    w = ibis.window(group_by=e.subscriber_id, order_by=[e.ts, e.cell_id])
    nxt = e.ts.lead().over(w)
    gap = (nxt.epoch_seconds() - e.ts.epoch_seconds()).fill_null(params.last_event_seconds)
    return e.select(
        "subscriber_id", "cell_id",
        dwell_s=ibis.least(gap, params.cap_seconds).cast("float64"),
        hour=e.ts.hour(),
        weekday=e.ts.day_of_week.index(),
    )


def _top_cell(d: ir.Table, name: str) -> ir.Table:
    per_cell = d.group_by(["subscriber_id", "cell_id"]).aggregate(total=d.dwell_s.sum())
    w = ibis.window(group_by=per_cell.subscriber_id,
                    order_by=[ibis.desc(per_cell.total), per_cell.cell_id])
    ranked = per_cell.mutate(rank=ibis.row_number().over(w))
    return ranked.filter(ranked.rank == 0).select("subscriber_id", **{name: ranked.cell_id})


def resident_cells(*, events: ir.Table, cells: ir.Table, window: AsOf,
                   params: ResidenceParams | None = None) -> ir.Table:
    """One row per subscriber seen in the window: home_cell/district/lat/lon, work_cell/
    district (null when the subscriber was never seen at night / at work)."""
    params = params or ResidenceParams()
    d = dwell(events=events, window=window, params=params)
    start, end = params.night
    night = d.filter((d.hour >= start) | (d.hour < end))
    lo, hi = params.office
    office = d.filter((d.weekday < 5) & (d.hour >= lo) & (d.hour < hi))
    home = _top_cell(night, "home_cell")
    work = _top_cell(office, "work_cell")
    seen = d.select("subscriber_id").distinct()
    out = seen.left_join(home, "subscriber_id").drop("subscriber_id_right")
    out = out.left_join(work, "subscriber_id").drop("subscriber_id_right")
    hc = cells.select(home_cell=cells.cell_id, home_district=cells.district,
                      home_lat=cells.lat, home_lon=cells.lon)
    wc = cells.select(work_cell=cells.cell_id, work_district=cells.district)
    out = out.left_join(hc, "home_cell").drop("home_cell_right")
    return out.left_join(wc, "work_cell").drop("work_cell_right")

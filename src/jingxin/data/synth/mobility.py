"""Location events: where each subscriber's phone was seen, about 20 times a day.

Every subscriber has a home cell (in their billing district, mostly) and, if they work, a
work cell (downtown or Pudong for about half of the workers). At night (21:00-07:00) the
phone is at home, on weekday office hours at work, otherwise at home, at work or out (a
mall, a station, a hall near home, or anywhere in the city). Travellers make trips: an
international trip starts with a morning at an airport cell and continues abroad (country
other than CN, a placeholder cell ``ROAM-<country>``, as wide as the city's cell ids ``C000001``); a domestic flight leaves a gap
while the subscriber is out of town. Events come out sorted by subscriber and time, in
batches, so the table can be streamed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from jingxin.data.synth import districts as geo
from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.cells import CellGrid
from jingxin.data.synth.columns import categorical
from jingxin.data.synth.subscribers import CHURNED, Population
from jingxin.data.warehouse.schema import LOCATION_EVENTS

EVENTS_PER_DAY = 20
BATCH = 25_000
SECONDS_PER_DAY = 86_400
HOUR_WEIGHT = np.array([0.5, 0.3, 0.2, 0.2, 0.2, 0.3, 0.6, 1.0, 1.4, 1.3, 1.2, 1.2,
                        1.3, 1.2, 1.2, 1.2, 1.2, 1.3, 1.4, 1.4, 1.3, 1.2, 1.0, 0.7])
HOUR_CDF = np.cumsum(HOUR_WEIGHT) / HOUR_WEIGHT.sum()


def _second_map() -> np.ndarray:
    """A uniform second of the day -> a second spread by the hourly activity profile
    (monotone, so sorted uniform times stay sorted)."""
    frac = np.arange(SECONDS_PER_DAY) / SECONDS_PER_DAY
    hour = np.searchsorted(HOUR_CDF, frac, side="right").clip(0, 23)
    lo = np.concatenate([[0.0], HOUR_CDF[:-1]])[hour]
    return (hour * 3600 + (frac - lo) / (HOUR_CDF[hour] - lo) * 3599).astype(np.int32)


SECOND_MAP = _second_map()
COUNTRIES = ("JP", "KR", "TH", "HK", "SG", "MO", "TW", "US", "GB", "FR", "DE", "AU", "MY",
             "VN", "AE", "IT")
COUNTRY_P = np.array([18, 10, 12, 12, 6, 4, 3, 8, 4, 3, 3, 4, 5, 4, 2, 2], dtype=float)
COUNTRY_P /= COUNTRY_P.sum()
CN = len(COUNTRIES)
COUNTRY_NAMES = COUNTRIES + ("CN",)
WORK_DISTRICT_P = np.where(geo.DOWNTOWN, geo.POPULATION, 0.0) + np.where(
    np.array(geo.NAMES) == "浦东新区", geo.POPULATION, 0.0)
WORK_DISTRICT_P = WORK_DISTRICT_P / WORK_DISTRICT_P.sum()


HOME, WORK, HAUNT, AIRPORT, ABROAD = 0, 1, 2, 5, 6  # columns of the anchor matrix
HAUNTS = 3
NORMAL, DEPART, AWAY, RETURN = range(4)  # day states of a trip


def _anchors(rng: np.random.Generator, pop: Population, grid: CellGrid,
             country: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per subscriber: the cells they can be in (home, work, three haunts near home or in
    the city, an airport, the roaming placeholder) and whether they work."""
    n = len(pop)
    moved = rng.random(n) < 0.15
    home_d = np.where(moved, rng.choice(len(geo.NAMES), n, p=geo.POPULATION_SHARE), pop.region)
    worker = (pop.age < 62) & (rng.random(n) < 0.78)
    work_d = np.where(rng.random(n) < 0.5, rng.choice(len(geo.NAMES), n, p=WORK_DISTRICT_P),
                      home_d)
    anchors = np.empty((n, 7), dtype=np.int64)
    anchors[:, HOME] = grid.homes.pick(rng, home_d)
    anchors[:, WORK] = np.where(worker, grid.works.pick(rng, work_d), anchors[:, HOME])
    for k in range(HAUNTS):
        near = rng.random(n) < 0.7
        anchors[:, HAUNT + k] = np.where(near, grid.works.pick(rng, home_d),
                                         rng.integers(0, len(grid), n))
    anchors[:, AIRPORT] = grid.airports[rng.integers(0, len(grid.airports), n)]
    anchors[:, ABROAD] = len(grid) + np.minimum(country, CN - 1)
    return anchors, worker


def _trips(rng: np.random.Generator, pop: Population, days: int):
    """Per subscriber and day: the trip state; per subscriber: the country (CN = none or a
    domestic trip)."""
    n = len(pop)
    intl = rng.random(n) < np.minimum(pop.intl_rate * days / 30.0, 1.0)
    dom = ~intl & (pop.dom_rate > 1.0) & (rng.random(n) < 0.12)
    depart = np.where(intl | dom, rng.integers(0, days, n), -days - 99)
    back = depart + 2 + rng.poisson(3.0, n)
    country = np.where(intl, rng.choice(len(COUNTRIES), n, p=COUNTRY_P), CN)
    day = np.arange(days)[None, :]
    state = np.select([day == depart[:, None], (day > depart[:, None]) & (day < back[:, None]),
                       day == back[:, None]], [DEPART, AWAY, RETURN], NORMAL)
    return state.astype(np.int8).ravel(), country


def _batch(rng: np.random.Generator, pop: Population, grid: CellGrid, cal: Calendar,
           days: int) -> pa.Table:
    n = len(pop)
    state_day, country = _trips(rng, pop, days)
    anchors, worker = _anchors(rng, pop, grid, country)
    per = rng.poisson(EVENTS_PER_DAY, n * days)
    sub = np.repeat(np.repeat(np.arange(n, dtype=np.int32), days), per)
    day = np.repeat(np.tile(np.arange(days, dtype=np.int8), n), per)
    # Sort uniform seconds within each (subscriber, day), then spread them by the hourly
    # profile; the map is monotone, so the order survives.
    offset = np.repeat(np.arange(n * days, dtype=np.int64) * SECONDS_PER_DAY, per)
    raw = np.sort(offset + rng.integers(0, SECONDS_PER_DAY, len(offset))) - offset
    sec = SECOND_MAP[raw]
    hour = (sec // 3600).astype(np.int8)
    day_no = cal.as_of_day - days + np.arange(days)
    weekday = ((day_no + 3) % 7)[day]  # 1970-01-01 was a Thursday; Monday = 0
    column = _columns(rng, hour, weekday, worker[sub], np.repeat(state_day, per),
                      country[sub])
    keep = column >= 0
    live = (pop.status != CHURNED)[sub] & (day_no[day] >= pop.entry_day[sub])
    keep &= live
    sub, column = sub[keep], column[keep]
    cell = anchors[sub, column]
    ts = (day_no[day[keep]] * SECONDS_PER_DAY + sec[keep]) * 1_000_000
    where = np.where(column == ABROAD, country[sub], CN)
    labels = tuple(grid.ids.to_pylist()) + tuple(f"ROAM-{c}" for c in COUNTRIES)
    return pa.Table.from_arrays(
        [pa.array(pop.subscriber_id[sub]), pa.array(ts, type=pa.int64()).cast(pa.timestamp("us")),
         categorical(labels, cell), categorical(COUNTRY_NAMES, where)],
        schema=LOCATION_EVENTS.schema)


def _place_table() -> np.ndarray:
    """Anchor column by (context, percentile): context 0 night, 1 weekday office hours of
    a worker, 2 other hours of a worker, 3 other hours of a non-worker. Haunts share what
    is left evenly."""
    share = {0: {HOME: 92}, 1: {WORK: 85}, 2: {HOME: 50, WORK: 20}, 3: {HOME: 70}}
    table = np.empty((4, 100), dtype=np.int8)
    for ctx, parts in share.items():
        row = [col for col, pct in parts.items() for _ in range(pct)]
        rest = 100 - len(row)
        row += [HAUNT + k * HAUNTS // max(rest, 1) for k in range(rest)]
        table[ctx] = row
    return table


PLACE = _place_table()
HOUR_CLASS = np.array([0] * 7 + [2, 2] + [1] * 9 + [2, 2, 2] + [0] * 3, dtype=np.int8)


def _columns(rng, hour, weekday, worker, state, country) -> np.ndarray:
    """Which anchor each event is at (-1: out of this network on a domestic trip)."""
    ctx = HOUR_CLASS[hour]
    ctx[(ctx == 1) & ~((weekday < 5) & worker)] = 2
    ctx[(ctx == 2) & ~worker] = 3
    pct = rng.integers(0, 100, len(hour), dtype=np.int8)
    col = PLACE[ctx, pct]
    # Trips touch few events: work on those only.
    idx = np.flatnonzero(state != NORMAL)
    h, st, c = hour[idx], state[idx], col[idx]
    gone = np.where(country[idx] == CN, -1, ABROAD)
    morning = (h >= 6) & (h < 11)
    c = np.where(st == DEPART, np.where(morning, AIRPORT, np.where(h >= 11, gone, c)), c)
    c = np.where(st == AWAY, gone, c)
    c = np.where(st == RETURN, np.where(h < 12, np.where(h >= 9, AIRPORT, gone), c), c)
    col[idx] = c
    return col


def location_events(rng: np.random.Generator, pop: Population, grid: CellGrid,
                    cal: Calendar, *, days: int) -> Iterator[pa.Table]:
    """Event tables for ``pop``, in batches of :data:`BATCH` subscribers."""
    for start in range(0, len(pop), BATCH):
        yield _batch(rng, pop.slice(start, start + BATCH), grid, cal, days)

"""Who goes where when in a synthetic morning: the stays (a subscriber in a cell from a
time to a time, seen every so often) that :mod:`jingxin.geofence.synthetic` expands into
location events.

Commuters leave home around 08:00 (a few through a railway station) and reach work
through handovers along the way; some of those at home visit a mall near them; airport
departures travel to an airport, stay 20-90 minutes hopping between its cells, detach,
and about half turn up abroad (``ROAM-<country>``) after the flight; arrivals come back
from abroad or another city, attach at the airport and travel home or to work. Every
draw is vectorised over the subscribers of a kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from jingxin.data.synth.mobility import COUNTRIES, COUNTRY_P
from jingxin.errors import InputError
from jingxin.geofence.types import EVENT_TYPES

START, END = 6 * 3600, 11 * 3600  # the morning, local seconds of the day
MIN = 60
UPDATE, ATTACH, DETACH, HANDOVER = (EVENT_TYPES.index(k)
                                    for k in ("update", "attach", "detach", "handover"))  # fmt: skip


@dataclass(frozen=True)
class MorningShares:
    """Who does what, as shares of the subscribers (airport) or of a group."""

    airport: float = 0.02
    arrivals: float = 0.3  # of the airport trips: coming back rather than leaving
    abroad: float = 0.5  # of departures (and of arrivals: where they come back from)
    commute_weekday: float = 0.75  # of those with a work cell elsewhere
    commute_weekend: float = 0.15
    rail: float = 0.06  # of commuters: through a railway station
    mall: float = 0.08  # of those at home: a visit to a mall


@dataclass
class World:
    """The cells and the subscribers of the morning, as arrays."""

    cell_ids: list[str]
    xy: np.ndarray  # (cells, 2) km east/north of (0, 0), for nearest-cell lookups
    kind: np.ndarray  # str per cell
    district: np.ndarray  # int per cell
    msisdn: pa.Array  # string per subscriber
    region: np.ndarray  # int per subscriber (same codes as district)
    home: np.ndarray  # cell index per subscriber
    work: np.ndarray  # cell index per subscriber (== home: no work elsewhere)


@dataclass
class Segments:
    """Stays of the morning: a subscriber in a cell from ``start`` to ``end`` (local
    seconds), an event at the start (``first`` type) and then about every ``period``."""

    parts: list[tuple[np.ndarray, ...]] = field(default_factory=list)

    def add(self, sub, cell, start, end, period, first, *, hop: bool = False) -> None:
        n = len(sub)
        cols = (sub, cell, start, end, period, first, np.full(n, hop))
        self.parts.append(tuple(np.broadcast_to(np.asarray(c), (n,)) for c in cols))

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(c) for c in zip(*self.parts, strict=True))


def plan(world: World, *, rng: np.random.Generator, shares: MorningShares,
         weekday: bool) -> Segments:  # fmt: skip
    """Who goes where when: the stays of everyone's morning."""
    # Nearest cells along a path: scipy's k-d tree, a well-kept one.
    from scipy.spatial import cKDTree

    n = len(world.home)
    tree = cKDTree(world.xy)
    segs = Segments()
    airport = rng.random(n) < shares.airport
    arriving = airport & (rng.random(n) < shares.arrivals)
    commute = shares.commute_weekday if weekday else shares.commute_weekend
    commuter = ~airport & (world.work != world.home) & (rng.random(n) < commute)
    rest = ~airport & ~commuter
    _commute(world, np.flatnonzero(commuter), rng, tree, segs, rail_share=shares.rail)
    mall = rest & (rng.random(n) < shares.mall)
    home = np.flatnonzero(rest & ~mall)
    _settle(home, world.home[home], START, END, UPDATE, rng, segs)
    _mall_visit(world, np.flatnonzero(mall), rng, tree, segs)
    _departure(world, np.flatnonzero(airport & ~arriving), rng, tree, segs, shares.abroad)
    _arrival(world, np.flatnonzero(arriving), rng, tree, segs, shares.abroad)
    return segs


def _uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(np.int64)


def _settle(sub: np.ndarray, cell: np.ndarray, start: Any, end: Any, first: int,
            rng: np.random.Generator, segs: Segments) -> None:
    """A quiet stay (home, work): an update, a data session or a call every 20-50 min."""
    segs.add(sub, cell, start, end, _uniform(rng, 20 * MIN, 50 * MIN, len(sub)), first)


def _travel(world: World, sub: np.ndarray, src: np.ndarray, dst: np.ndarray, t: np.ndarray,
            rng: np.random.Generator, tree, segs: Segments, *, hops: tuple[int, int],
            minutes: tuple[float, float], via: np.ndarray | None = None) -> np.ndarray:
    """Handovers through the cells nearest to points along src -> dst, one event each;
    ``via`` (a cell per subscriber, -1 none) replaces the middle hop with a 10-25 minute
    stop. Returns the arrival times."""
    count = rng.integers(hops[0], hops[1] + 1, len(sub))
    a, b = world.xy[src], world.xy[dst]
    t = t.copy()
    for j in range(hops[1]):
        live = j < count
        frac = ((j + 1) / (count + 1))[:, None]
        point = a + frac * (b - a) + rng.normal(0, 0.4, (len(sub), 2))
        cell = tree.query(point)[1].astype(np.int64)
        stay = _uniform(rng, minutes[0] * MIN, minutes[1] * MIN, len(sub))
        if via is not None:
            stop = live & (via >= 0) & (j == count // 2)
            cell = np.where(stop, via, cell)
            stay = np.where(stop, _uniform(rng, 10 * MIN, 25 * MIN, len(sub)), stay)
        segs.add(sub[live], cell[live], t[live], (t + stay)[live], 5 * MIN, HANDOVER)
        t = np.where(live, t + stay, t)
    return t


def _commute(world: World, sub: np.ndarray, rng: np.random.Generator, tree, segs: Segments,
             *, rail_share: float) -> None:  # fmt: skip
    leave = np.clip(rng.normal(8 * 3600, 45 * MIN, len(sub)), START + 15 * MIN,
                    END - 30 * MIN).astype(np.int64)  # fmt: skip
    _settle(sub, world.home[sub], START, leave, UPDATE, rng, segs)
    via = np.full(len(sub), -1, np.int64)
    rail = np.flatnonzero(world.kind == "rail")
    if len(rail):
        mid = (world.xy[world.home[sub]] + world.xy[world.work[sub]]) / 2
        nearest = rail[_nearest(world.xy[rail], mid, 1)[:, 0]]
        via = np.where(rng.random(len(sub)) < rail_share, nearest, -1)
    arrive = _travel(world, sub, world.home[sub], world.work[sub], leave, rng, tree, segs,
                     hops=(2, 5), minutes=(4, 10), via=via)  # fmt: skip
    _settle(sub, world.work[sub], arrive, END, HANDOVER, rng, segs)


def _mall_visit(world: World, sub: np.ndarray, rng: np.random.Generator, tree,
                segs: Segments) -> None:  # fmt: skip
    malls = np.flatnonzero(world.kind == "mall")
    if len(malls) == 0:
        return _settle(sub, world.home[sub], START, END, UPDATE, rng, segs)
    # A mall near home: the nearest of a few, picked at random.
    k = min(5, len(malls))
    near = _nearest(world.xy[malls], world.xy[world.home[sub]], k)
    mall = malls[near[np.arange(len(sub)), rng.integers(0, k, len(sub))]]
    leave = _uniform(rng, 8 * 3600, 10 * 3600, len(sub))
    _settle(sub, world.home[sub], START, leave, UPDATE, rng, segs)
    there = _travel(world, sub, world.home[sub], mall, leave, rng, tree, segs,
                    hops=(1, 3), minutes=(4, 8))  # fmt: skip
    back = there + _uniform(rng, 30 * MIN, 100 * MIN, len(sub))
    segs.add(sub, mall, there, back, _uniform(rng, 8 * MIN, 15 * MIN, len(sub)), HANDOVER)
    home = _travel(world, sub, mall, world.home[sub], back, rng, tree, segs,
                   hops=(1, 3), minutes=(4, 8))  # fmt: skip
    _settle(sub, world.home[sub], home, END, HANDOVER, rng, segs)
    return None


def _nearest(points: np.ndarray, at: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` points nearest each of ``at``, shape (len(at), k)."""
    from scipy.spatial import cKDTree

    return cKDTree(points).query(at, k=k)[1].reshape(len(at), k)


def _gates(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per traveller an airport cell: where they arrive at (or land in) the airport."""
    cells = np.flatnonzero(world.kind == "airport")
    if len(cells) == 0:
        raise InputError("warehouse table 'cells' has no cell of kind 'airport': "
                         "no airport trip can be drawn (use --airport-share 0)")  # fmt: skip
    return cells[rng.integers(0, len(cells), n)]


def _abroad_cell(world: World, rng: np.random.Generator, n: int) -> np.ndarray:
    return len(world.cell_ids) + rng.choice(len(COUNTRIES), n, p=COUNTRY_P)


def _airport_stay(sub: np.ndarray, gate: np.ndarray, t: np.ndarray, stay: np.ndarray,
                  rng: np.random.Generator, segs: Segments, first: int) -> None:
    """Updates every 4-9 minutes, each in one of the airport's cells (``hop``)."""
    segs.add(sub, gate, t, t + stay, _uniform(rng, 4 * MIN, 9 * MIN, len(sub)), first, hop=True)


def _departure(world: World, sub: np.ndarray, rng: np.random.Generator, tree, segs: Segments,
               abroad_share: float) -> None:  # fmt: skip
    if len(sub) == 0:
        return
    gate = _gates(world, len(sub), rng)
    leave = _uniform(rng, START, 9 * 3600, len(sub))
    _settle(sub, world.home[sub], START, leave, UPDATE, rng, segs)
    arrive = _travel(world, sub, world.home[sub], gate, leave, rng, tree, segs,
                     hops=(3, 6), minutes=(5, 12))  # fmt: skip
    stay = _uniform(rng, 20 * MIN, 90 * MIN, len(sub))
    _airport_stay(sub, gate, arrive, stay, rng, segs, HANDOVER)
    gone = arrive + stay
    segs.add(sub, gate, gone, gone + 1, 3600, DETACH)
    abroad = rng.random(len(sub)) < abroad_share
    landed = gone + _uniform(rng, 90 * MIN, 240 * MIN, len(sub))
    segs.add(sub[abroad], _abroad_cell(world, rng, len(sub))[abroad], landed[abroad], END,
             _uniform(rng, 20 * MIN, 40 * MIN, len(sub))[abroad], ATTACH)  # fmt: skip


def _arrival(world: World, sub: np.ndarray, rng: np.random.Generator, tree, segs: Segments,
             abroad_share: float) -> None:  # fmt: skip
    if len(sub) == 0:
        return
    gate = _gates(world, len(sub), rng)
    land = _uniform(rng, 6 * 3600 + 30 * MIN, 10 * 3600, len(sub))
    abroad = rng.random(len(sub)) < abroad_share
    boarded = land - _uniform(rng, 90 * MIN, 240 * MIN, len(sub))
    segs.add(sub[abroad], _abroad_cell(world, rng, len(sub))[abroad], START, boarded[abroad],
             _uniform(rng, 20 * MIN, 40 * MIN, len(sub))[abroad], UPDATE)  # fmt: skip
    stay = _uniform(rng, 20 * MIN, 60 * MIN, len(sub))
    _airport_stay(sub, gate, land, stay, rng, segs, ATTACH)
    dst = np.where(rng.random(len(sub)) < 0.6, world.home[sub], world.work[sub])
    there = _travel(world, sub, gate, dst, land + stay, rng, tree, segs,
                    hops=(3, 6), minutes=(5, 12))  # fmt: skip
    _settle(sub, dst, there, END, HANDOVER, rng, segs)

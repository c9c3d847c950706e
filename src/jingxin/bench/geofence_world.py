"""The synthetic world of ``jingxin bench geofence-match``: a cell table, fences over it,
a directory of subscribers and a stream of location events, all in memory.

Cells lie over an 80 km square, half of them in dense clusters (downtowns), half spread
out. A fence is the cells nearest its centre: mostly one or two (a hall, a shop), a third
3-5 (a mall, a block), a few 6-15 (a station) and one in a hundred 30-60 (an airport);
one in ten is centred near another fence (overlaps). Dwell, hours and audiences are mixed: a third fire at once, a quarter
have opening hours, a fifth target one of three shared audience bitmaps.

Events: a tenth of the subscribers are active in the two hours measured (07:00-09:00
local), about ten events each, time-ordered across the whole stream. They walk between
neighbouring cells; one in seven starts in a fence and mostly stays (dwellers). A few
events are what a real feed has: abroad (an off-grid cell), a number not in the
directory, a repeated event, an event a minute late.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy, Arrow and the geofence types load when the benchmark runs:
    import numpy as np  # `jingxin bench` imports every bench module to list them

    from jingxin.geofence.types import EventBatch, Fence

DAY = dt.date(2026, 12, 1)
START_LOCAL = 7 * 3600  # the stream starts at 07:00 local (+08:00)
SPAN_S = 2 * 3600
SIDE_KM = 80.0
EVENTS_PER_ACTIVE = 10


@dataclass(frozen=True)
class MatchPlan:
    subscribers: int = 10_000_000
    fences: int = 10_000
    events: int = 5_000_000
    batch: int = 20_000
    cells: int = 100_000
    seed: int = 42


@dataclass
class World:
    cells: Any  # CellIndex
    fences: list[Fence]
    compiled: Any  # CompiledFences
    directory: Any  # Directory
    batches: list[EventBatch]
    stats: dict[str, Any] = field(default_factory=dict)


def build_world(plan: MatchPlan) -> World:
    """Everything the benchmark feeds the matcher, deterministic by ``plan.seed``."""
    import numpy as np
    from scipy.spatial import cKDTree  # neighbour queries over 10^5 cells

    from jingxin.geofence.compiled import CompiledFences
    from jingxin.geofence.directory import CellIndex

    rng = np.random.default_rng(plan.seed)
    xy = _cell_positions(rng, plan.cells)
    tree = cKDTree(xy)
    ids = [f"C{i:07d}" for i in range(plan.cells)]
    cells = CellIndex.from_ids(ids, source="bench cells")
    members, fences = _fences(rng, xy, tree, ids, plan.fences)
    compiled = CompiledFences.build(fences, cells)
    directory = _directory(rng, plan.subscribers)
    _audiences(rng, compiled, len(directory))
    neighbours = tree.query(xy, k=7)[1][:, 1:]
    batches, stats = _events(rng, plan, directory, members, neighbours, ids)
    covered = np.unique(np.concatenate(members))
    sizes = np.array([len(m) for m in members])
    stats.update(cells_in_fences_share=round(len(covered) / plan.cells, 4),
                 fence_cells_p50=int(np.median(sizes)), fence_cells_p95=int(np.percentile(sizes, 95)),
                 fence_cells_max=int(sizes.max()),
                 events_in_fences_share=round(float(stats.pop("in_fence") / plan.events), 4))  # fmt: skip
    return World(cells, fences, compiled, directory, batches, stats)


def _cell_positions(rng: np.random.Generator, n: int) -> np.ndarray:
    import numpy as np

    spread = rng.uniform(0, SIDE_KM, (n - n // 2, 2))
    centres = rng.uniform(10, SIDE_KM - 10, (40, 2))
    dense = centres[rng.integers(0, 40, n // 2)] + rng.normal(0, 2.5, (n // 2, 2))
    return np.vstack([spread, dense])


def _fences(rng: np.random.Generator, xy: np.ndarray, tree: Any, ids: list[str],
            n: int) -> tuple[list[np.ndarray], list[Fence]]:  # fmt: skip
    import numpy as np

    from jingxin.geofence.types import Fence

    centre = xy[rng.integers(0, len(xy), n)]
    on_other = np.flatnonzero(rng.random(n) < 0.1)
    centre[on_other] = centre[rng.integers(0, n, len(on_other))] + rng.normal(0, 0.2, (len(on_other), 2))
    size = rng.random(n)
    count = np.select([size < 0.60, size < 0.92, size < 0.99],
                      [rng.integers(1, 3, n), rng.integers(3, 6, n), rng.integers(6, 16, n)],
                      rng.integers(30, 61, n))  # fmt: skip
    nearest = tree.query(centre, k=int(count.max()))[1].reshape(n, -1)
    members = [np.sort(nearest[i, : count[i]]) for i in range(n)]
    kind = rng.random(n)
    dwell = np.where(kind < 0.3, 0, np.where(kind < 0.7, 300, rng.integers(600, 1201, n)))
    hours = rng.random(n) < 0.25
    fences = [Fence(code=f"bench-{i:05d}", name=f"bench fence {i}", scenario="other",
                    cells=tuple(ids[c] for c in members[i]), template="fence.other",
                    dwell_seconds=int(dwell[i]), hours=((8 * 60, 22 * 60),) if hours[i] else ())
              for i in range(n)]  # fmt: skip
    return members, fences


def _directory(rng: np.random.Generator, n: int) -> Any:
    """``n`` random unique numbers (86 13x..19x), sorted."""
    import numpy as np

    from jingxin.geofence.directory import Directory

    lo, hi = 8_613_000_000_000, 8_619_999_999_999
    numbers = _sorted_unique(rng.integers(lo, hi, n + n // 20 + 100))
    while len(numbers) < n:  # practically never: 7 * 10^9 numbers to draw from
        numbers = _sorted_unique(np.concatenate([numbers, rng.integers(lo, hi, n)]))
    numbers = np.delete(numbers, rng.choice(len(numbers), len(numbers) - n, replace=False))
    return Directory.from_arrays(numbers, np.arange(1, n + 1, dtype=np.int64), source="bench")


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique, by sort and compare: numpy 2.4's np.unique takes 10 s on 10^7 int64."""
    import numpy as np

    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _audiences(rng: np.random.Generator, compiled: Any, subscribers: int) -> None:
    """Three shared segment bitmaps (20, 40, 60 % of the subscribers), each the audience
    of about one fence in fifteen."""
    import array

    import numpy as np
    from pyroaring import BitMap

    segments = []
    for share in (0.2, 0.4, 0.6):
        members = np.flatnonzero(rng.random(subscribers) < share).astype(np.uint32)
        segments.append(BitMap(array.array("I", members.tobytes())))
    pick = rng.integers(0, 15, len(compiled.codes))
    for fence in np.flatnonzero(pick < 3):
        compiled.set_audience(int(fence), segments[pick[fence]])


def _events(rng: np.random.Generator, plan: MatchPlan, directory: Any, members: list[np.ndarray],
            neighbours: np.ndarray, ids: list[str]) -> tuple[list[EventBatch], dict[str, Any]]:
    import numpy as np
    import pyarrow as pa

    from jingxin.geofence.types import EVENT_TYPES, EventBatch

    active = min(len(directory), max(1, plan.events // EVENTS_PER_ACTIVE))
    steps = -(-plan.events // active)
    who = rng.choice(len(directory), active, replace=False)
    fence_cells = np.concatenate(members)
    dweller = rng.random(active) < 1 / 7
    cur = np.where(dweller, fence_cells[rng.integers(0, len(fence_cells), active)],
                   rng.integers(0, len(neighbours), active))  # fmt: skip
    move_p = np.where(dweller, 0.05, 0.3)
    gap = SPAN_S * 1000 / steps
    t = rng.uniform(0, gap, active)
    cell = np.empty((active, steps), np.int64)
    ts = np.empty((active, steps), np.int64)
    for k in range(steps):  # a walk: each step depends on the one before
        repeat = rng.random(active) < 0.002  # the same event twice
        move = ~repeat & (rng.random(active) < move_p)
        cur = np.where(move, neighbours[cur, rng.integers(0, neighbours.shape[1], active)], cur)
        t = np.where(repeat, t, t + rng.exponential(gap, active))
        cell[:, k], ts[:, k] = cur, t.astype(np.int64)
    sub = np.repeat(who, steps)
    cell, ts = cell.ravel(), ts.ravel()
    order = np.argsort(ts, kind="stable")[: plan.events]
    sub, cell, ts = sub[order], cell[order], ts[order]
    late = rng.random(len(ts)) < 0.001
    ts = np.where(late, ts - 60_000, ts)  # a minute late, in its place in the stream
    midnight = (DAY - dt.date(1970, 1, 1)).days * 86_400 - 8 * 3600
    ts = (midnight + START_LOCAL) * 1000 + ts
    msisdn = directory.msisdn[sub]
    stranger = rng.random(len(ts)) < 0.002
    msisdn = np.where(stranger, 8_612_000_000_000 + sub, msisdn)  # not in the directory
    abroad = rng.random(len(ts)) < 0.003
    in_fence = np.zeros(len(ids) + 1, bool)
    in_fence[fence_cells] = True
    cell = np.where(abroad, len(ids), cell)
    labels = pa.array(ids + ["ROAM-JP"]).take(pa.array(cell))
    kind = np.full(len(ts), EVENT_TYPES.index("update"), np.uint8)
    batches = [EventBatch(msisdn[lo:lo + plan.batch], labels.slice(lo, plan.batch),
                          ts[lo:lo + plan.batch], kind[lo:lo + plan.batch])
               for lo in range(0, len(ts), plan.batch)]  # fmt: skip
    stats = {"active_subscribers": int(active), "in_fence": int(in_fence[cell].sum()),
             "event_span_s": SPAN_S}  # fmt: skip
    return batches, stats

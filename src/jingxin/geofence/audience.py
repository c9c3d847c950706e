"""Who each fence may reach, as bitmaps of directory positions, refreshed from the warehouse.

The matcher checks membership per trigger in O(1) (a pyroaring bitmap); it never queries
the warehouse per event. :func:`refresh_audiences` is what asks the warehouse, once per
refresh (``[geofence] audience_refresh_seconds``):

* **audience** - a fence's ``segment`` is an audience spec as data, compiled exactly as
  ``jingxin audience count`` compiles a spec file (:mod:`jingxin.audience.compile`), run
  once per distinct spec (two fences with the same segment share the query) and mapped to
  directory positions. A fence without a segment reaches everyone (bitmap None). A
  segment that does not compile or run suspends that fence's offers (an empty bitmap) with
  an ERROR naming the fence and the reason; the other fences go on.
* **residents** - subscribers whose resident home or work cell (the latest ``features``
  build, :mod:`jingxin.audience.residence`) is one of the fence's cells: one join of the
  features with a small (cell, fence) table for every fence at once. Without a features
  table nobody is a resident (a WARNING says so).
"""

from __future__ import annotations

import array
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from pyroaring import BitMap

from jingxin.errors import JingxinError

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.geofence.compiled import CompiledFences
    from jingxin.geofence.directory import Directory

__all__ = ["bitmap_of", "refresh_audiences", "refresh_residents", "segment_positions"]

log = logging.getLogger(__name__)


def bitmap_of(positions: np.ndarray) -> BitMap:
    """A bitmap of the non-negative directory positions in ``positions``."""
    # Sort and drop repeats by hand: numpy 2's np.unique is ~40x slower on 10M int64 here.
    kept = np.sort(np.asarray(positions, dtype=np.int64))
    kept = kept[np.concatenate(([True], kept[1:] != kept[:-1]))] if len(kept) else kept
    kept = kept[kept >= 0].astype(np.uint32)
    # array.array is pyroaring's fast path (a numpy array is iterated element by element).
    return BitMap(array.array("I", kept.tobytes()))


def segment_positions(warehouse: Warehouse, directory: Directory, segment: Any, *,
                      source: str) -> np.ndarray:  # fmt: skip
    """Directory positions of the subscribers ``segment`` (a spec as data) selects; a spec
    that does not validate is a SpecError naming ``source``."""
    from jingxin.audience.compile import compile_prepared, prepare
    from jingxin.audience.spec import parse_spec

    spec = parse_spec(dict(segment), source=source)
    compiled = compile_prepared(warehouse, prepare(spec, source=source))
    ids = compiled.ids.select("subscriber_id").to_pyarrow().column("subscriber_id")
    positions = directory.positions_of_ids(ids.to_numpy().astype(np.int64, copy=False))
    return positions[positions >= 0]


def refresh_audiences(compiled: CompiledFences, directory: Directory,
                      warehouse: Warehouse) -> dict[str, int]:  # fmt: skip
    """Set every fence's audience and resident bitmaps (module docstring); returns the
    members per fence code (a fence without a segment: the whole directory; a suspended
    one: 0)."""
    members: dict[str, int] = {}
    answered: dict[str, BitMap] = {}  # one query per distinct spec
    for i, fence in enumerate(compiled.fences):
        if fence.segment is None:
            compiled.set_audience(i, None)
            members[fence.code] = len(directory)
            continue
        key = json.dumps(fence.segment, sort_keys=True, ensure_ascii=False, default=str)
        if key not in answered:
            try:
                positions = segment_positions(warehouse, directory, fence.segment,
                                              source=f"fence {fence.code}: segment")  # fmt: skip
                answered[key] = bitmap_of(positions)
            except Exception as exc:  # noqa: BLE001 - one bad segment suspends one fence
                reason = (str(exc) if isinstance(exc, JingxinError)
                          else f"{type(exc).__name__}: {exc}")  # fmt: skip
                log.error("fence %s: segment does not compile, its offers are suspended: %s",
                          fence.code, reason)  # fmt: skip
                compiled.set_audience(i, BitMap())
                members[fence.code] = 0
                continue
        compiled.set_audience(i, answered[key])
        members[fence.code] = len(answered[key])
    residents = refresh_residents(compiled, directory, warehouse)
    log.info("fence audiences refreshed: %d fence(s), %d segment quer(ies), %d resident(s)",
             len(compiled.fences), len(answered), residents)  # fmt: skip
    return members


def refresh_residents(compiled: CompiledFences, directory: Directory,
                      warehouse: Warehouse) -> int:  # fmt: skip
    """Set every fence's resident bitmap from the latest features build (one query for
    all fences); returns the (subscriber, fence) resident pairs found. A query that fails
    keeps the bitmaps as they were (an ERROR says why)."""
    try:
        pairs = _resident_pairs(compiled, directory, warehouse)
    except Exception as exc:  # noqa: BLE001 - the warehouse failing must not stop the matcher
        log.error("fence residents: the warehouse query failed, kept as they were: %s", exc)
        return 0
    if pairs is None:
        for i in range(len(compiled.fences)):
            compiled.set_residents(i, BitMap())
        return 0
    sub, fence = pairs
    order = np.lexsort((sub, fence))
    sub, fence = sub[order], fence[order]
    bounds = np.searchsorted(fence, np.arange(len(compiled.fences) + 1))
    for i in range(len(compiled.fences)):
        compiled.set_residents(i, bitmap_of(sub[bounds[i]:bounds[i + 1]]))
    return len(sub)


def _resident_pairs(compiled: CompiledFences, directory: Directory,
                    warehouse: Warehouse) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """(directory position, fence index) of every resident, or None without features."""
    import ibis

    from jingxin.audience.compile import features_as_of

    cells = [(cell, i) for i, f in enumerate(compiled.fences) for cell in f.cells]
    if not cells:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    try:
        as_of = features_as_of(warehouse, None)
    except JingxinError as exc:
        log.warning("fence residents: %s; nobody counts as a resident", exc)
        return None
    table = ibis.memtable({"cell": [c for c, _ in cells],
                           "fence": np.array([i for _, i in cells], np.int64)})  # fmt: skip
    features = warehouse.table("features")
    features = features.filter(features.as_of == as_of)
    # Home and work each joined on the fence table: a subscriber whose home and work are
    # both in a fence is one pair (distinct), not two.
    sides = [features.select("subscriber_id", cell=features[column])
             .inner_join(table, "cell").select("subscriber_id", "fence")
             for column in ("home_cell", "work_cell")]  # fmt: skip
    found = sides[0].union(sides[1], distinct=True).to_pyarrow()
    ids = found.column("subscriber_id").to_numpy().astype(np.int64, copy=False)
    fence = found.column("fence").to_numpy().astype(np.int64, copy=False)
    positions = directory.positions_of_ids(ids).astype(np.int64)
    known = positions >= 0
    return positions[known], fence[known]

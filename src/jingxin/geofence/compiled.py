"""Fences compiled to arrays the matcher reads per batch.

A fence is its index here (``codes[i]``), stable only for this compilation: the matcher's
state is remapped by code when fences change (``Matcher.set_fences``). What the matcher
needs per batch is which fences each cell belongs to: a CSR table cell -> fences
(``cell_indptr``/``cell_fences``) and ``degree`` (fences per cell, with a trailing 0 so the
"off grid" position -1 reads as "no fence"). Most cells belong to no fence, so one gather
of ``degree`` filters a batch down to the few events that matter.

Per-fence rules are arrays too (dwell in ms, cap, residents as an index into RESIDENTS,
active hours as a CSR of [start, end) local-minute intervals). Audience and resident
members are pyroaring bitmaps of directory positions, refreshed by the runner; a bitmap is
membership in O(1) without a per-subscriber object and they remap cheaply when the
directory changes (:meth:`CompiledFences.remap_members`). A disabled fence keeps its index
but matches no cell.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from pyroaring import BitMap

from jingxin.errors import InputError
from jingxin.geofence.directory import CellIndex
from jingxin.geofence.types import RESIDENTS, Fence

FENCE_BITS = 20  # a stay's key is (subscriber << FENCE_BITS) | fence
MAX_FENCES = (1 << FENCE_BITS) - 1
DAY_MINUTES = 24 * 60


class CompiledFences:
    """Fences resolved against one cell index (module docstring)."""

    def __init__(self, fences: list[Fence], cells: CellIndex) -> None:
        self.fences = fences
        self.codes = [f.code for f in fences]
        self.cells_fingerprint = cells.fingerprint()
        self.n_cells = len(cells)
        self.warnings: list[str] = []
        self._index = {code: i for i, code in enumerate(self.codes)}
        self.dwell_ms = np.array([f.dwell_seconds * 1000 for f in fences], np.int64)
        self.cap = np.array([f.cap_per_day for f in fences], np.int64)
        self.residents = np.array([RESIDENTS.index(f.residents) for f in fences], np.uint8)
        self.audience: list[BitMap | None] = [None] * len(fences)
        self.resident_members: list[BitMap] = [BitMap() for _ in fences]
        self._hours(fences)
        self._cells(fences, cells)

    @classmethod
    def build(cls, fences: Sequence[Fence], cells: CellIndex) -> CompiledFences:
        fences = list(fences)
        if len(fences) > MAX_FENCES:
            raise InputError(f"{len(fences)} fences: the matcher holds at most {MAX_FENCES}")
        seen: set[str] = set()
        for fence in fences:
            if fence.code in seen:
                raise InputError(f"fence {fence.code!r}: code given twice")
            seen.add(fence.code)
            _check(fence)
        return cls(fences, cells)

    def _hours(self, fences: list[Fence]) -> None:
        counts = [len(f.hours) for f in fences]
        self.hours_indptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        spans = [span for f in fences for span in f.hours]
        self.hours_start = np.array([s for s, _ in spans], np.int64)
        self.hours_end = np.array([e for _, e in spans], np.int64)

    def _cells(self, fences: list[Fence], cells: CellIndex) -> None:
        names = [c for fence in fences for c in fence.cells]
        owner = np.repeat(np.arange(len(fences), dtype=np.int32), [len(f.cells) for f in fences])
        found = cells.lookup(names)  # one lookup for all fences
        for i in np.unique(owner[found < 0]):
            missing = [c for c, at in zip(fences[i].cells, cells.lookup(list(fences[i].cells)),
                                          strict=True) if at < 0]  # fmt: skip
            self.warnings.append(
                f"fence {fences[i].code}: {len(missing)} cell(s) not in the cell table, dropped: "
                + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        matching = np.bincount(owner[found >= 0], minlength=len(fences))
        for i in np.flatnonzero(matching == 0):
            code = fences[i].code
            self.warnings.append(f"fence {code}: no cell in the cell table, never matches")
        enabled = np.array([f.enabled for f in fences], bool)
        use = (found >= 0) & enabled[owner] if len(fences) else found >= 0
        pairs = np.unique((found[use].astype(np.int64) << 32) | owner[use])  # sorted, unique
        cell, fence_of = (pairs >> 32).astype(np.int64), (pairs & 0xFFFFFFFF).astype(np.int32)
        self.cell_fences = fence_of
        per_cell = np.bincount(cell, minlength=len(cells)).astype(np.int64)
        self.cell_indptr = np.concatenate([[0], np.cumsum(per_cell)]).astype(np.int64)
        self.degree = np.append(per_cell, 0).astype(np.int32)  # [-1] = off grid: no fence

    def __len__(self) -> int:
        return len(self.fences)

    def index_of(self, code: str) -> int | None:
        return self._index.get(code)

    def fences_of(self, cell_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR over the given cell positions: fences of ``cell_idx[i]`` are
        ``fence[indptr[i]:indptr[i + 1]]`` (ascending). Position -1 has none."""
        cell_idx = np.asarray(cell_idx, dtype=np.int64)
        degree = self.degree[cell_idx].astype(np.int64)
        indptr = np.concatenate([[0], np.cumsum(degree)])
        starts = self.cell_indptr[np.where(cell_idx >= 0, cell_idx, 0)]
        offset = np.repeat(starts - indptr[:-1], degree)
        return indptr, self.cell_fences[offset + np.arange(indptr[-1])]

    def in_hours(self, fence: np.ndarray, at_ms: np.ndarray, utc_offset_seconds: int) -> np.ndarray:
        """Whether the local time of each ``at_ms`` is in its fence's hours (no hours: all
        day; an interval with start > end wraps midnight)."""
        fence = np.asarray(fence, dtype=np.int64)
        minute = ((np.asarray(at_ms, np.int64) // 1000 + utc_offset_seconds) // 60) % DAY_MINUTES
        count = self.hours_indptr[fence + 1] - self.hours_indptr[fence]
        ok = count == 0
        if not len(self.hours_start) or ok.all():
            return ok
        row = np.repeat(np.arange(len(fence)), count)
        span = np.repeat(self.hours_indptr[fence] - np.cumsum(count) + count, count)
        span = span + np.arange(len(row))
        start, end, m = self.hours_start[span], self.hours_end[span], minute[row]
        inside = np.where(start < end, (m >= start) & (m < end), (m >= start) | (m < end))
        return ok | (np.bincount(row, weights=inside, minlength=len(fence)) > 0)

    def set_audience(self, fence: int, members: BitMap | None) -> None:
        """Directory positions in the fence's segment; None: everyone."""
        self.audience[fence] = members

    def set_residents(self, fence: int, members: BitMap) -> None:
        """Directory positions of the fence's residents (home or work cell inside it)."""
        self.resident_members[fence] = members

    def remap_members(self, new_position: np.ndarray) -> None:
        """Audience and resident bitmaps after a directory change: ``new_position[old]`` is
        each old position's new one (-1: gone)."""
        self.audience = [None if m is None else _remap(m, new_position) for m in self.audience]
        self.resident_members = [_remap(m, new_position) for m in self.resident_members]


def _remap(members: BitMap, new_position: np.ndarray) -> BitMap:
    if not members:
        return BitMap()
    old = np.frombuffer(members.to_array(), dtype=np.uint32)
    new = new_position[old[old < len(new_position)]]
    kept = np.sort(new[new >= 0]).astype(np.uint32)
    # array.array is pyroaring's fast path (it iterates a numpy array element by element).
    return BitMap(array.array("I", kept.tobytes()))


def _check(fence: Fence) -> None:
    where = f"fence {fence.code!r}"
    if fence.residents not in RESIDENTS:
        raise InputError(f"{where}: residents {fence.residents!r} not one of {RESIDENTS}")
    if fence.dwell_seconds < 0 or not 0 <= fence.cap_per_day <= 255:
        raise InputError(f"{where}: dwell_seconds must not be negative, cap_per_day 0..255")
    if fence.holdout is not None:
        from jingxin.analytics.holdout import parse_share

        try:
            parse_share(fence.holdout)
        except ValueError as exc:
            raise InputError(f"{where}: holdout: {exc}") from None
    for start, end in fence.hours:
        if not (0 <= start < DAY_MINUTES and 0 <= end <= DAY_MINUTES):
            raise InputError(f"{where}: hours ({start}, {end}) not local minutes of a day")

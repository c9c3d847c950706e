"""The vectorised geofence matcher: location events in, offers asked for out.

Per batch, with no Python loop per event (GEOFENCE semantics, docs/geofence.md):

1. sort by (number, ts), stable; directory positions follow the numbers' order, so this is
   (subscriber, ts) order and the sorted numbers find their positions cache-friendly
   (searchsorted); cells -> positions through the cell index's vectorised hash table;
   unknown numbers are counted and dropped;
2. drop events older than the subscriber's last processed one (``out_of_order``) and
   repeats of the one before (``duplicate``: same ts, same cell); the rest are processed
   and those off the cell table counted ``off_grid`` (the event type is not used);
3. expand the events in some fence's cells to (event, fence) pairs through the CSR table
   (most events are in no fence: one gather of the cell's fence count filters them out);
4. a stay is a run of consecutive events of one subscriber inside one fence; a run that
   starts at the subscriber's first event of the batch continues the open stay kept in the
   state, any other starts one (``entries``); a run that does not reach the subscriber's
   last event ends (``exits``), as does a kept stay the batch does not continue;
5. ``entered_ms`` is broadcast over each run, due = ts - entered >= dwell; the first due
   pair of a fresh stay is ``dwelled`` (then ``outside_hours`` if so, counted once: the
   stay stays open to a later event in hours); the first due pair in the fence's hours
   decides the stay: audience, residents, caps (few pairs: a short Python loop over
   bitmaps and the fired records);
6. the batch's subscribers' open stays are replaced in the state, their last (ts, cell)
   recorded.

``sweep(now_ms)`` decides stays whose dwell elapsed with no new event (``received_ms``
-1). ``set_fences`` and ``set_directory`` remap the state by fence code and by number.

Checkpoints: ``checkpoint(path, extra)`` saves the state atomically with ``extra`` plus
``fences`` (the codes, by index), ``directory`` and ``cells`` (fingerprints).
``Matcher.restore(path, fences, directory, cells)`` loads it and remaps whatever changed
since, returning the matcher and the whole ``extra``. Replaying events after a restore
gives the same stays (same ``entered_ms``) and so the same idempotency keys: an offer
already handed to the delivery entry comes back "duplicate", never twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from jingxin.errors import InputError
from jingxin.geofence.compiled import FENCE_BITS, CompiledFences
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.state import (
    DECIDED,
    FENCE_MASK,
    OUTSIDE_HOURS,
    WAITING,
    MatcherState,
)
from jingxin.geofence.types import RESIDENTS, EventBatch, MatchResult, Triggers

_ONCE, _SKIP = RESIDENTS.index("once"), RESIDENTS.index("skip")
_DAY_SECONDS = 86_400


def _add(counts: Counter, key: str, value: Any) -> None:
    if value:
        counts[key] += int(value)


def _firsts(group: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values."""
    out = np.ones(len(group), bool)
    out[1:] = group[1:] != group[:-1]
    return out


class Matcher:
    """Fences x directory x cells, and the state of who is inside (module docstring)."""

    def __init__(self, fences: CompiledFences, directory: Directory, cells: CellIndex, *,
                 state: MatcherState | None = None,
                 utc_offset_seconds: int = 8 * 3600) -> None:  # fmt: skip
        if fences.cells_fingerprint != cells.fingerprint():
            raise InputError("fences were compiled against another cell table")
        if state is None:
            state = MatcherState.empty(directory.msisdn, cells.ids)
        elif len(state.msisdn) != len(directory) or len(state.cell_ids) != len(cells):
            raise InputError("matcher state is for another directory or cell table "
                             "(use Matcher.restore, which remaps)")  # fmt: skip
        self.fences = fences
        self.directory = directory
        self.cells = cells
        self.state = state
        self.utc_offset_seconds = utc_offset_seconds

    @property
    def watermark_ms(self) -> int:
        """The largest event ts processed (-1 before any); kept in checkpoints."""
        return self.state.watermark_ms

    @watermark_ms.setter
    def watermark_ms(self, value: int) -> None:
        self.state.watermark_ms = int(value)

    # --- events ---------------------------------------------------------------------
    def process(self, batch: EventBatch, cell_idx: np.ndarray | None = None) -> MatchResult:
        """Match one batch (module docstring). ``cell_idx``: the cells' positions when the
        caller has them already (the runner, for roaming)."""
        counts: Counter = Counter()
        _add(counts, "events", len(batch))
        if not len(batch):
            return MatchResult(Triggers.empty(), counts)
        msisdn = np.asarray(batch.msisdn, np.int64)
        ts = np.asarray(batch.ts, np.int64)
        cell = self.cells.lookup(batch.cell) if cell_idx is None else np.asarray(cell_idx)
        # Directory positions follow the numbers' order, so sorting by (number, ts) sorts
        # by (subscriber, ts), and sorted numbers find their positions cache-friendly.
        if np.all(ts[1:] >= ts[:-1]):
            order = np.argsort(msisdn, kind="stable")  # the usual case: a source in ts order
        else:
            order = np.lexsort((ts, msisdn))
        sub = self.directory.lookup(msisdn[order])
        known = sub >= 0
        _add(counts, "unknown_subscriber", len(batch) - np.count_nonzero(known))
        order = order[known]
        s, t, c = sub[known], ts[order], cell[order].astype(np.int32)
        r = (np.full(len(order), -1, np.int64) if batch.received_ms is None
             else np.asarray(batch.received_ms, np.int64)[order])  # fmt: skip
        kept = self._admit(s, t, c, counts)
        s, t, c, r = s[kept], t[kept], c[kept], r[kept]
        if not len(s):
            return MatchResult(Triggers.empty(), counts)
        self.state.watermark_ms = max(self.state.watermark_ms, int(t.max()))
        _add(counts, "off_grid", np.count_nonzero(c < 0))
        triggers = self._stays(s, t, c, r, counts)
        last = np.flatnonzero(_lasts(s))
        self.state.last_ts[s[last]] = t[last]
        self.state.last_cell[s[last]] = c[last]
        return MatchResult(triggers, counts)

    def _admit(self, s: np.ndarray, t: np.ndarray, c: np.ndarray, counts: Counter) -> np.ndarray:
        """Mask of events to process: not older than the subscriber's last processed event,
        not a repeat (same ts, same cell) of the event before it."""
        last_ts, last_cell = self.state.last_ts[s], self.state.last_cell[s]
        late = t < last_ts
        # The event before: the previous one of the batch (same subscriber, not late), or
        # the last one of an earlier batch. A repeat compared with a repeat is the same.
        in_batch = ~_firsts(s)
        in_batch[1:] &= ~late[:-1]
        prev_t = np.where(in_batch, np.roll(t, 1), last_ts)
        prev_c = np.where(in_batch, np.roll(c, 1), last_cell)
        repeat = ~late & (t == prev_t) & (c == prev_c)
        _add(counts, "out_of_order", np.count_nonzero(late))
        _add(counts, "duplicate", np.count_nonzero(repeat))
        return ~(late | repeat)

    def _stays(self, s: np.ndarray, t: np.ndarray, c: np.ndarray, r: np.ndarray,
               counts: Counter) -> Triggers:  # fmt: skip
        """Steps 3-6 of the module docstring on the admitted, sorted events."""
        state, fences = self.state, self.fences
        first = _firsts(s)
        positions = np.arange(len(s))
        sub_first = np.maximum.accumulate(np.where(first, positions, 0))
        ev = np.flatnonzero(fences.degree[c] > 0)
        if not len(ev) and not len(state.open):
            return Triggers.empty()
        indptr, pf = fences.fences_of(c[ev])
        pe = np.repeat(ev, np.diff(indptr))
        pk = (s[pe].astype(np.int64) << FENCE_BITS) | pf
        order = np.argsort(pk, kind="stable")  # (subscriber, fence, event)
        pk, pe, pf = pk[order], pe[order], pf[order]
        run_start = _firsts(pk)
        run_start[1:] |= pe[1:] != pe[:-1] + 1
        rs = np.flatnonzero(run_start)
        run_id = np.cumsum(run_start) - 1
        run_last = np.flatnonzero(np.append(run_start[1:], True)[:len(pk)])
        # Runs at the subscriber's first event continue the stay the state has open.
        found, kept = state.open.find(pk[rs])
        cont = found & (pe[rs] == sub_first[pe[rs]])
        entered = np.where(cont, kept["entered"], t[pe[rs]])
        decided = np.where(cont, kept["decided"], 0).astype(np.uint8)
        reaches_end = _lasts(s)[pe[run_last]]
        triggers = self._dwell(pe, pf, run_id, entered, decided, s, t, r, counts)
        stay = run_last[reaches_end]
        had_open = state.replace_open(s[first], pk[stay], entered[reaches_end],
                                      decided[reaches_end])  # fmt: skip
        _add(counts, "entries", np.count_nonzero(~cont))
        _add(counts, "exits", had_open - np.count_nonzero(cont) + np.count_nonzero(~reaches_end))
        return triggers

    def _dwell(self, pe: np.ndarray, pf: np.ndarray, run_id: np.ndarray, entered: np.ndarray,
               decided: np.ndarray, s: np.ndarray, t: np.ndarray, r: np.ndarray,
               counts: Counter) -> Triggers:  # fmt: skip
        """Step 5: dwell, hours, then the decisions. Updates ``decided`` per run."""
        at_ms = t[pe]
        since = entered[run_id]
        due = np.flatnonzero((decided[run_id] != DECIDED)
                             & (at_ms - since >= self.fences.dwell_ms[pf]))  # fmt: skip
        if not len(due):
            return Triggers.empty()
        in_hours = self.fences.in_hours(pf[due], at_ms[due], self.utc_offset_seconds)
        first_due = _firsts(run_id[due])
        fresh = decided[run_id[due[first_due]]] == 0
        _add(counts, "dwelled", np.count_nonzero(fresh))
        _add(counts, "outside_hours", np.count_nonzero(fresh & ~in_hours[first_due]))
        decided[run_id[due[first_due]]] = OUTSIDE_HOURS
        hit = due[in_hours]
        hit = hit[_firsts(run_id[hit])]  # the first due pair in hours of each run
        decided[run_id[hit]] = DECIDED
        return self._decide(s[pe[hit]], pf[hit], since[hit], at_ms[hit], r[pe[hit]], counts)

    # --- decisions ------------------------------------------------------------------
    def _decide(self, sub: np.ndarray, fence: np.ndarray, entered: np.ndarray,
                at_ms: np.ndarray, received: np.ndarray, counts: Counter) -> Triggers:  # fmt: skip
        """Audience, residents, caps for stays that are due and in hours, in order per
        (subscriber, fence). Few rows per batch: a plain loop, records updated at once."""
        fences, state = self.fences, self.state
        key = (sub.astype(np.int64) << FENCE_BITS) | fence
        found, record = state.fired.find(key)
        day0, count0 = record["day"], record["count"]
        day = (at_ms // 1000 + self.utc_offset_seconds) // _DAY_SECONDS
        records: dict[int, tuple[int, int]] = {}  # key -> (day, count), fired ones
        fired: list[int] = []
        for i in range(len(sub)):
            f, member, k = int(fence[i]), int(sub[i]), int(key[i])
            audience = fences.audience[f]
            if audience is not None and member not in audience:
                counts["not_in_audience"] += 1
                continue
            ever = k in records or bool(found[i])
            last_day, last_count = records.get(k, (int(day0[i]), int(count0[i])))
            mode = int(fences.residents[f])
            if member in fences.resident_members[f] and (mode == _SKIP or (mode == _ONCE and ever)):
                counts["resident_skipped"] += 1
                continue
            today = last_count if ever and last_day == day[i] else 0
            if today >= fences.cap[f]:
                counts["capped"] += 1
                continue
            older = ever and last_day > day[i]  # an offer at an earlier local day than the record
            records[k] = (last_day, last_count) if older else (int(day[i]), today + 1)
            fired.append(i)
        if records:
            keys = np.array(sorted(records), np.int64)
            values = np.array([records[int(k)] for k in keys], np.int64).reshape(-1, 2)
            state.fired.upsert(keys, {"day": values[:, 0], "count": np.minimum(values[:, 1], 255)})
        _add(counts, "triggered", len(fired))
        pick = np.array(fired, np.int64)
        return Triggers(sub=sub[pick].astype(np.int32), msisdn=self.directory.msisdn[sub[pick]],
                        fence=fence[pick].astype(np.int32), entered_ms=entered[pick],
                        at_ms=at_ms[pick], received_ms=received[pick])  # fmt: skip

    def sweep(self, now_ms: int) -> MatchResult:
        """Decide the open stays whose dwell elapsed by ``now_ms`` (usually the watermark)
        with no event since; ``at_ms`` is ``now_ms``, ``received_ms`` -1."""
        counts: Counter = Counter()
        subs, fence_ids, entered = [], [], []
        for part in self.state.open.parts():  # both parts of the table, updated in place
            decided = part.columns["decided"]
            waiting = np.flatnonzero(decided < DECIDED)  # few: most stays are decided
            waiting = waiting[part.live[waiting]]
            fence = (part.key[waiting] & FENCE_MASK).astype(np.int64)
            since = part.columns["entered"][waiting]
            due = since + self.fences.dwell_ms[fence] <= now_ms
            waiting, fence, since = waiting[due], fence[due], since[due]
            at_ms = np.full(len(fence), now_ms, np.int64)
            in_hours = self.fences.in_hours(fence, at_ms, self.utc_offset_seconds)
            fresh = decided[waiting] == WAITING
            _add(counts, "dwelled", np.count_nonzero(fresh))
            _add(counts, "outside_hours", np.count_nonzero(fresh & ~in_hours))
            decided[waiting] = np.where(in_hours, DECIDED, OUTSIDE_HOURS)
            subs.append(part.key[waiting[in_hours]] >> FENCE_BITS)
            fence_ids.append(fence[in_hours])
            entered.append(since[in_hours])
        sub = np.concatenate(subs)
        at_ms = np.full(len(sub), now_ms, np.int64)
        triggers = self._decide(sub, np.concatenate(fence_ids), np.concatenate(entered), at_ms,
                                np.full(len(sub), -1, np.int64), counts)  # fmt: skip
        return MatchResult(triggers, counts)

    # --- changes --------------------------------------------------------------------
    def set_fences(self, fences: CompiledFences) -> None:
        """New fences: stays and fired records follow their fence by code; a removed
        fence's are dropped (no exit counted), a new fence starts empty."""
        if fences.cells_fingerprint != self.cells.fingerprint():
            raise InputError("fences were compiled against another cell table")
        self._remap_fences(self.fences.codes, fences)
        self.fences = fences

    def _remap_fences(self, old_codes: list[str], fences: CompiledFences) -> None:
        if old_codes == fences.codes:
            return
        index = [fences.index_of(code) for code in old_codes]
        self.state.remap_fences(np.array([-1 if i is None else i for i in index], np.int64))

    def set_directory(self, directory: Directory) -> None:
        """A new directory: state (and audience/resident bitmaps) follow the number; a
        subscriber no longer in it drops out, a new one starts with no state."""
        if directory.fingerprint() != self.directory.fingerprint():
            new_position = directory.lookup(self.state.msisdn)
            self.state.remap_subscribers(new_position, directory.msisdn)
            self.fences.remap_members(new_position)
        self.state.msisdn = directory.msisdn
        self.directory = directory

    # --- checkpoints ----------------------------------------------------------------
    def checkpoint(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Save the state atomically; ``extra`` (JSON) travels with it (module docstring)."""
        meta = dict(extra or {})
        meta.update(fences=self.fences.codes, directory=self.directory.fingerprint(),
                    cells=self.cells.fingerprint())  # fmt: skip
        self.state.save(path, meta)

    @classmethod
    def restore(cls, path: Path, fences: CompiledFences, directory: Directory,
                cells: CellIndex, *, utc_offset_seconds: int = 8 * 3600,
                ) -> tuple[Matcher, dict[str, Any]]:  # fmt: skip
        """Load a checkpoint and remap it to these fences, directory and cells."""
        state, extra = MatcherState.load(path)
        old_codes = extra.get("fences")
        if not isinstance(old_codes, list) or not all(isinstance(c, str) for c in old_codes):
            raise InputError(f"checkpoint {path}: no fence codes in it")
        for table in (state.open.items()[0], state.fired.items()[0]):
            if len(table) and int((table & FENCE_MASK).max()) >= len(old_codes):
                raise InputError(f"checkpoint {path}: a fence index past its fence codes")
        if list(state.cell_ids) != cells.ids:
            state.remap_cells(cells.lookup(list(state.cell_ids)), cells.ids)
        state.cell_ids = cells.ids
        if extra.get("directory") != directory.fingerprint():
            state.remap_subscribers(directory.lookup(state.msisdn), directory.msisdn)
        state.msisdn = directory.msisdn
        matcher = cls(fences, directory, cells, state=state,
                      utc_offset_seconds=utc_offset_seconds)  # fmt: skip
        matcher._remap_fences(old_codes, fences)
        return matcher, extra


def _lasts(group: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal values."""
    out = np.ones(len(group), bool)
    out[:-1] = group[1:] != group[:-1]
    return out

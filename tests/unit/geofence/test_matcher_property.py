"""The vectorised matcher against a plain per-event model of the rules (GEOFENCE semantics),
on random small worlds: fences overlapping at random, hours (some wrapping midnight),
audiences, residents, caps, events with repeats and late arrivals, split into random
batches with sweeps and checkpoint round trips between them. Same triggers, same counts,
same state after every batch."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from jingxin.geofence.compiled import FENCE_BITS, CompiledFences
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.matcher import Matcher
from jingxin.geofence.state import FENCE_MASK, KeyedTable
from jingxin.geofence.types import EventBatch, Fence

OFFSET = 8 * 3600
CELLS = ["C0", "C1", "C2", "C3"]
NUMBERS = [8613900000001, 8613900000002, 8613900000003]
STRANGER = 8613999999999  # not in the directory
BASE = 1_767_196_800_000  # 2026-01-01 00:00 Shanghai (local midnight)
HOURS = [(), ((8 * 60, 20 * 60),), ((22 * 60, 6 * 60),), ((9 * 60, 10 * 60), (13 * 60, 18 * 60))]


def local_minute(at_ms: int) -> int:
    return ((at_ms // 1000 + OFFSET) // 60) % 1440


def local_day(at_ms: int) -> int:
    return (at_ms // 1000 + OFFSET) // 86400


class Reference:
    """The rules, one event at a time, with dicts (slow, obviously right)."""

    def __init__(self, fences: list[Fence], audience: list[set | None], residents: list[set]):
        self.fences, self.audience, self.residents = fences, audience, residents
        self.position = {n: i for i, n in enumerate(NUMBERS)}
        self.cell = {c: i for i, c in enumerate(CELLS)}
        self.fences_of: dict[int, list[int]] = {}
        for f, fence in enumerate(fences):
            for c in fence.cells:
                if fence.enabled and c in self.cell:  # a cell not in the table is dropped
                    self.fences_of.setdefault(self.cell[c], []).append(f)
        self.last: dict[int, tuple[int, int]] = {}
        self.open: dict[tuple[int, int], list[int]] = {}  # -> [entered, decided 0/1/2]
        self.fired: dict[tuple[int, int], tuple[int, int]] = {}  # -> (day, count)
        self.counts: Counter = Counter()
        self.triggers: list[tuple] = []

    def process(self, events: list[tuple[int, str, int, int]]) -> None:
        self.counts["events"] += len(events)
        rows = []
        for number, cell, ts, received in events:
            if number not in self.position:
                self.counts["unknown_subscriber"] += 1
                continue
            rows.append((self.position[number], ts, self.cell.get(cell, -1), received))
        for sub, ts, cell, received in sorted(rows, key=lambda r: (r[0], r[1])):
            self.event(sub, ts, cell, received)

    def event(self, sub: int, ts: int, cell: int, received: int) -> None:
        last = self.last.get(sub)
        if last is not None and ts < last[0]:
            self.counts["out_of_order"] += 1
            return
        if last == (ts, cell):
            self.counts["duplicate"] += 1
            return
        self.last[sub] = (ts, cell)
        if cell < 0:
            self.counts["off_grid"] += 1
        inside = set(self.fences_of.get(cell, ()))
        for key in [k for k in self.open if k[0] == sub and k[1] not in inside]:
            del self.open[key]
            self.counts["exits"] += 1
        for f in sorted(inside):
            if (sub, f) not in self.open:
                self.counts["entries"] += 1
                self.open[(sub, f)] = [ts, 0]
            self.evaluate(sub, f, ts, received)

    def sweep(self, now_ms: int) -> None:
        for (sub, f), stay in sorted(self.open.items()):
            if stay[1] != 2 and now_ms - stay[0] >= self.fences[f].dwell_seconds * 1000:
                self.evaluate(sub, f, now_ms, -1)

    def evaluate(self, sub: int, f: int, at_ms: int, received: int) -> None:
        fence, stay = self.fences[f], self.open[(sub, f)]
        if stay[1] == 2 or at_ms - stay[0] < fence.dwell_seconds * 1000:
            return
        if stay[1] == 0:
            self.counts["dwelled"] += 1
        m = local_minute(at_ms)
        if fence.hours and not any(s <= m < e if s < e else (m >= s or m < e)
                                   for s, e in fence.hours):  # fmt: skip
            if stay[1] == 0:
                self.counts["outside_hours"] += 1
            stay[1] = 1
            return
        stay[1] = 2
        self.offer(sub, f, stay[0], at_ms, received)

    def offer(self, sub: int, f: int, entered: int, at_ms: int, received: int) -> None:
        fence = self.fences[f]
        if self.audience[f] is not None and sub not in self.audience[f]:
            self.counts["not_in_audience"] += 1
            return
        record = self.fired.get((sub, f))
        if sub in self.residents[f] and (fence.residents == "skip"
                                         or (fence.residents == "once" and record)):  # fmt: skip
            self.counts["resident_skipped"] += 1
            return
        day = local_day(at_ms)
        today = record[1] if record and record[0] == day else 0
        if today >= fence.cap_per_day:
            self.counts["capped"] += 1
            return
        if not (record and record[0] > day):
            self.fired[(sub, f)] = (day, today + 1)
        self.counts["triggered"] += 1
        self.triggers.append((sub, NUMBERS[sub], f, entered, at_ms, received))


fence_st = st.fixed_dictionaries({
    "cells": st.sets(st.sampled_from(CELLS + ["GONE"]), min_size=1, max_size=3),
    "dwell_seconds": st.sampled_from([0, 10, 1800, 3 * 3600]),
    "hours": st.sampled_from(HOURS), "cap_per_day": st.sampled_from([0, 1, 1, 2, 2]),
    "residents": st.sampled_from(["once", "repeat", "skip"])})  # fmt: skip
subs_st = st.none() | st.sets(st.integers(0, len(NUMBERS) - 1))
# Each event moves the clock by a step: repeats (0), seconds, the dwell times, hours, a
# day, and sometimes back (late events, out of order once an earlier batch went past them).
STEPS = [0, 0, 5_000, 10_000, 1_800_000, 3 * 3_600_000, 9 * 3_600_000, 86_400_000, -1_800_000,
         -3_600_000]  # fmt: skip
SKEW = {NUMBERS[0]: 0, NUMBERS[1]: -5 * 3_600_000, NUMBERS[2]: 7 * 3_600_000, STRANGER: 0}
event_st = st.tuples(
    st.sampled_from([NUMBERS[0], NUMBERS[0], NUMBERS[1], NUMBERS[2], STRANGER]),
    st.sampled_from(CELLS + ["ROAM-JP"]), st.sampled_from(STEPS)) | st.integers(1, 8)  # fmt: skip


@st.composite
def worlds(draw: st.DrawFn) -> tuple:
    drawn = draw(st.lists(fence_st, min_size=1, max_size=4))
    fences = [Fence(code=f"f{i}", name=f"F{i}", scenario="mall", template="t",
                    **{**f, "cells": tuple(sorted(f["cells"]))},
                    enabled=i == 0 or draw(st.booleans()))  # a disabled fence never matches
              for i, f in enumerate(drawn)]  # fmt: skip
    audience = [draw(subs_st) for _ in fences]
    residents = [draw(st.sets(st.integers(0, len(NUMBERS) - 1))) for _ in fences]
    clock, events = BASE + draw(st.integers(0, 23)) * 3_600_000, []
    for drawn in draw(st.lists(event_st, min_size=6, max_size=60)):
        if isinstance(drawn, int):  # a copy of an earlier event, delivered again
            events.append(events[-min(drawn, len(events))] if events else (STRANGER, "C0", 0, 0))
            continue
        number, cell, step = drawn
        clock += step
        events.append((number, cell, clock + SKEW[number], clock + 40))
    cuts = sorted(draw(st.sets(st.integers(0, len(events)), max_size=10)))
    then = st.sampled_from(["none", "sweep", "checkpoint"])
    between = draw(st.lists(then, min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return fences, audience, residents, events, cuts, between


def batch_of(events: list[tuple]) -> EventBatch:
    return EventBatch(msisdn=np.array([e[0] for e in events], np.int64),
                      cell=[e[1] for e in events],
                      ts=np.array([e[2] for e in events], np.int64),
                      kind=np.zeros(len(events), np.uint8),
                      received_ms=np.array([e[3] for e in events], np.int64))  # fmt: skip


def as_rows(triggers) -> list[tuple]:
    return sorted(zip(triggers.sub.tolist(), triggers.msisdn.tolist(), triggers.fence.tolist(),
                      triggers.entered_ms.tolist(), triggers.at_ms.tolist(),
                      triggers.received_ms.tolist(), strict=True))  # fmt: skip


def assert_same_state(matcher: Matcher, model: Reference) -> None:
    state = matcher.state  # read without merging the parts: the next batch sees them as is
    opened = {(k >> FENCE_BITS, k & FENCE_MASK): list(v) for k, v in state.open.snapshot().items()}
    assert opened == model.open
    fired = {(k >> FENCE_BITS, k & FENCE_MASK): v for k, v in state.fired.snapshot().items()}
    assert fired == model.fired
    pairs = enumerate(zip(state.last_ts, state.last_cell, strict=True))
    last = {i: (int(t), int(c)) for i, (t, c) in pairs if c != -2}
    assert last == model.last


@settings(max_examples=200, deadline=None)
@given(worlds(), st.sampled_from([1, 2, 4096]))
def test_vectorised_matcher_equals_the_per_event_model(world: tuple, merge_at: int) -> None:
    # merge_at: the keyed tables merge their parts every batch, sometimes, or never
    default, KeyedTable.merge_at = KeyedTable.merge_at, merge_at
    try:
        check_against_model(*world)
    finally:
        KeyedTable.merge_at = default


def check_against_model(fences: list[Fence], audience: list, residents: list, events: list,
                        cuts: list[int], between: list[str]) -> None:  # fmt: skip
    # Given the same fences, audiences and residents on both sides
    cells = CellIndex.from_ids(CELLS)
    directory = Directory.from_arrays(NUMBERS, [11, 12, 13])
    compiled = CompiledFences.build(fences, cells)
    for f in range(len(fences)):
        compiled.set_audience(f, None if audience[f] is None else BitMap(audience[f]))
        compiled.set_residents(f, BitMap(residents[f]))
    matcher = Matcher(compiled, directory, cells, utc_offset_seconds=OFFSET)
    model = Reference(fences, audience, residents)
    with tempfile.TemporaryDirectory() as tmp:
        for start, end, then in zip([0, *cuts], [*cuts, len(events)], between, strict=True):
            # When a batch is processed (then a sweep or a checkpoint round trip)
            result = matcher.process(batch_of(events[start:end]))
            before = len(model.triggers)
            model.process(events[start:end])
            counts = result.counts
            if then == "sweep":
                swept = matcher.sweep(matcher.watermark_ms)
                model.sweep(matcher.watermark_ms)
                counts = counts + swept.counts
                rows = as_rows(result.triggers) + as_rows(swept.triggers)
            else:
                rows = as_rows(result.triggers)
            if then == "checkpoint":
                matcher.checkpoint(Path(tmp) / "state.npz", {"at": end})
                matcher, extra = Matcher.restore(Path(tmp) / "state.npz", compiled, directory,
                                                 cells, utc_offset_seconds=OFFSET)  # fmt: skip
                assert extra["at"] == end
            # Then both ask for the same offers, count the same, and remember the same
            assert sorted(rows) == sorted(model.triggers[before:])
            assert counts == +model.counts
            model.counts = Counter()
            assert_same_state(matcher, model)

"""The baseline of ``jingxin bench geofence-match``: the matcher as one would first write
it, a Python dict per subscriber and a loop per event.

Same semantics as :class:`jingxin.geofence.matcher.Matcher` (docs/geofence.md): each
batch sorted by (subscriber, ts); late and repeated events dropped; a stay per
(subscriber, fence) from the event that enters until one outside; dwell, then hours,
audience, residents, cap; a sweep at the watermark. It runs on a sample and its trigger
count is compared with the matcher's on the same sample: the two agreeing is a check of
both. It is given its subscriber lookup for free (a dict of the sample's numbers, built
outside the timing), which favours it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `jingxin bench` imports every bench module: keep this one light
    from jingxin.geofence.types import EventBatch

DAY_S = 86_400


class NaiveMatcher:
    def __init__(self, compiled: Any, cells: Any, known: dict[int, int], *,
                 utc_offset_seconds: int) -> None:  # fmt: skip
        self.grid = set(cells.ids)
        self.by_cell: dict[str, list[int]] = {}
        for f, fence in enumerate(compiled.fences):
            for cell in fence.cells:
                self.by_cell.setdefault(cell, []).append(f)
        self.dwell = [f.dwell_seconds * 1000 for f in compiled.fences]
        self.hours = [f.hours for f in compiled.fences]
        self.cap = [f.cap_per_day for f in compiled.fences]
        self.residents = [f.residents for f in compiled.fences]
        self.audience = compiled.audience
        self.resident_members = compiled.resident_members
        self.known = known
        self.offset = utc_offset_seconds
        self.subs: dict[int, dict[str, Any]] = {}
        self.pending: dict[tuple[int, int], list[int]] = {}  # undecided stays, for the sweep
        self.fired: dict[tuple[int, int], tuple[int, int]] = {}
        self.counts: Counter = Counter()
        self.watermark = -1  # the largest ts admitted
        self.triggers: list[tuple[int, int, int, int]] = []  # (msisdn, fence, entered, at)

    def process(self, batch: EventBatch) -> None:
        cells = batch.cell.to_pylist() if hasattr(batch.cell, "to_pylist") else list(batch.cell)
        rows = sorted(zip(batch.msisdn.tolist(), batch.ts.tolist(), cells, strict=True),
                      key=lambda r: (r[0], r[1]))  # fmt: skip
        for msisdn, ts, cell in rows:
            self.counts["events"] += 1
            pos = self.known.get(msisdn)
            if pos is None:
                self.counts["unknown_subscriber"] += 1
                continue
            state = self.subs.get(msisdn)
            if state is None:
                state = self.subs[msisdn] = {"ts": None, "cell": None, "stays": {}}
            if state["ts"] is not None and ts < state["ts"]:
                self.counts["out_of_order"] += 1
                continue
            if ts == state["ts"] and cell == state["cell"]:
                self.counts["duplicate"] += 1
                continue
            state["ts"], state["cell"] = ts, cell
            self.watermark = max(self.watermark, ts)
            if cell not in self.grid:
                self.counts["off_grid"] += 1
            self._event(msisdn, pos, ts, self.by_cell.get(cell, ()), state["stays"])

    def _event(self, msisdn: int, pos: int, ts: int, fences: Any, stays: dict) -> None:
        for f in list(stays):
            if f not in fences:
                del stays[f]
                self.pending.pop((msisdn, f), None)
                self.counts["exits"] += 1
        for f in fences:
            if f not in stays:
                stays[f] = self.pending[(msisdn, f)] = [ts, 0]
                self.counts["entries"] += 1
            self._due(msisdn, pos, f, stays[f], ts)

    def _due(self, msisdn: int, pos: int, f: int, stay: list[int], at: int) -> None:
        entered, decided = stay
        if decided == 2 or at - entered < self.dwell[f]:
            return
        if decided == 0:
            self.counts["dwelled"] += 1
        if not self._in_hours(f, at):
            if decided == 0:
                self.counts["outside_hours"] += 1
            stay[1] = 1
            return
        stay[1] = 2
        self.pending.pop((msisdn, f), None)
        self._decide(msisdn, pos, f, entered, at)

    def _in_hours(self, f: int, at: int) -> bool:
        if not self.hours[f]:
            return True
        minute = (at // 1000 + self.offset) % DAY_S // 60
        return any(s <= minute < e if s < e else (minute >= s or minute < e)
                   for s, e in self.hours[f])  # fmt: skip

    def _decide(self, msisdn: int, pos: int, f: int, entered: int, at: int) -> None:
        audience = self.audience[f]
        if audience is not None and pos not in audience:
            self.counts["not_in_audience"] += 1
            return
        record = self.fired.get((pos, f))
        mode = self.residents[f]
        if pos in self.resident_members[f] and (
                mode == "skip" or (mode == "once" and record is not None)):
            self.counts["resident_skipped"] += 1
            return
        day = (at // 1000 + self.offset) // DAY_S
        today = record[1] if record is not None and record[0] == day else 0
        if today >= self.cap[f]:
            self.counts["capped"] += 1
            return
        self.fired[(pos, f)] = (day, today + 1)
        self.counts["triggered"] += 1
        self.triggers.append((msisdn, f, entered, at))

    def sweep(self, now: int) -> None:
        for (msisdn, f), stay in list(self.pending.items()):
            if stay[0] + self.dwell[f] <= now:
                self._due(msisdn, self.known[msisdn], f, stay, now)


def known_numbers(directory: Any, batches: list[EventBatch]) -> dict[int, int]:
    """Directory position of every number of the sample that is in the directory."""
    import numpy as np

    numbers = np.unique(np.concatenate([b.msisdn for b in batches]))
    pos = directory.lookup(numbers)
    return {int(n): int(p) for n, p in zip(numbers, pos, strict=True) if p >= 0}

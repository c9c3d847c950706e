"""The matcher's rules one by one, on a hand-made world of four cells and three numbers:
dwell, exits and re-entries, overlapping fences, hours (wrapping midnight), audience,
residents, caps per local day, late and repeated events, off-grid cells, sweeps, and
fences or directory changing under open stays. Also the directory and cell index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pyroaring import BitMap

from jingxin.errors import InputError
from jingxin.geofence.compiled import CompiledFences
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.matcher import Matcher
from jingxin.geofence.types import EventBatch, Fence

A, B, C = 8613900000001, 8613900000002, 8613900000003
CELLS = CellIndex.from_ids(["C1", "C2", "C3", "C4"])
DAY0 = 1_767_196_800_000  # 2026-01-01 00:00 in Shanghai
MINUTE = 60_000


def local(hour: int, minute: int = 0, *, day: int = 0) -> int:
    """Epoch ms of a Shanghai wall-clock time (UTC+8)."""
    return DAY0 + day * 86_400_000 + (hour * 60 + minute) * MINUTE


def fence(code: str, *cells: str, **rules) -> Fence:
    return Fence(code=code, name=code.title(), scenario="mall", cells=cells,
                 template="fence.mall", **rules)  # fmt: skip


def matcher(*fences: Fence, numbers: tuple[int, ...] = (A, B, C)) -> Matcher:
    directory = Directory.from_arrays(list(numbers), list(range(1, len(numbers) + 1)))
    return Matcher(CompiledFences.build(fences, CELLS), directory, CELLS)


def batch(*rows: tuple[int, str, int]) -> EventBatch:
    return EventBatch(msisdn=np.array([r[0] for r in rows], np.int64), cell=[r[1] for r in rows],
                      ts=np.array([r[2] for r in rows], np.int64),
                      kind=np.zeros(len(rows), np.uint8),
                      received_ms=np.array([r[2] + 5 for r in rows], np.int64))  # fmt: skip


def offers(m: Matcher, *rows: tuple[int, str, int]) -> tuple[list[tuple], dict]:
    """(msisdn, fence code, entered_ms, at_ms) asked for, and the counts."""
    result = m.process(batch(*rows))
    return _rows(m, result), dict(result.counts)


def _rows(m: Matcher, result) -> list[tuple]:
    t = result.triggers
    rows = zip(t.msisdn, t.fence, t.entered_ms, t.at_ms, strict=True)
    return [(int(n), m.fences.codes[f], int(e), int(a)) for n, f, e, a in rows]


def test_an_entry_triggers_once_the_dwell_has_passed() -> None:
    # Given a fence with a ten-minute dwell
    m = matcher(fence("mall", "C1", "C2", dwell_seconds=600))
    # When A comes in and is seen inside nine minutes later, then ten
    early, counts = offers(m, (A, "C1", local(12)), (A, "C2", local(12, 9)))
    late, more = offers(m, (A, "C1", local(12, 10)), (A, "C1", local(12, 30)))
    # Then the offer is asked for once, at ten minutes, naming the entry
    assert early == [] and counts == {"events": 2, "entries": 1}
    assert late == [(A, "mall", local(12), local(12, 10))]
    assert more == {"events": 2, "dwelled": 1, "triggered": 1}
    assert m.process(batch((A, "C1", local(13)))).counts["triggered"] == 0


def test_leaving_before_the_dwell_triggers_nothing_and_a_return_is_a_new_stay() -> None:
    m = matcher(fence("mall", "C1", dwell_seconds=600, cap_per_day=2))
    got, counts = offers(m, (A, "C1", local(12)), (A, "C3", local(12, 5)),
                         (A, "C1", local(12, 20)), (A, "C1", local(12, 29)))  # fmt: skip
    assert got == [] and counts["entries"] == 2 and counts["exits"] == 1
    got, _ = offers(m, (A, "C1", local(12, 30)))
    assert got == [(A, "mall", local(12, 20), local(12, 30))]  # the second stay's entry
    assert m.state.inside(0) == [(0, local(12, 20))]


def test_overlapping_fences_keep_independent_stays() -> None:
    m = matcher(fence("hall", "C1", "C2"), fence("mall", "C2", "C3", dwell_seconds=300))
    # Given A walks C1 (hall) -> C2 (hall and mall) -> C3 (mall)
    got, counts = offers(m, (A, "C1", local(10)), (A, "C2", local(10, 2)), (A, "C3", local(10, 7)))
    # Then the hall fires on entry (no dwell), the mall after 5 minutes from its own entry
    assert got == [(A, "hall", local(10), local(10)), (A, "mall", local(10, 2), local(10, 7))]
    assert counts["exits"] == 1 and counts["entries"] == 2  # left the hall, still in the mall
    # When A steps back into the hall: a new hall stay (capped today), the mall stay goes on
    got, counts = offers(m, (A, "C2", local(10, 8)))
    assert got == [] and counts == {"events": 1, "entries": 1, "dwelled": 1, "capped": 1}


@pytest.mark.parametrize(("hours", "at", "fires"), [
    (((8 * 60, 20 * 60),), local(12), True),
    (((8 * 60, 20 * 60),), local(20), False),  # the end is excluded
    (((22 * 60, 6 * 60),), local(23, 30), True),  # wraps midnight
    (((22 * 60, 6 * 60),), local(5, 59), True),
    (((22 * 60, 6 * 60),), local(12), False),
    (((9 * 60, 10 * 60), (13 * 60, 14 * 60)), local(13, 15), True),
])  # fmt: skip
def test_hours_are_local_and_may_wrap_midnight(hours: tuple, at: int, fires: bool) -> None:
    m = matcher(fence("station", "C1", hours=hours))
    got, counts = offers(m, (A, "C1", at))
    assert bool(got) is fires
    assert counts.get("outside_hours", 0) == (0 if fires else 1)


def test_a_stay_dwelled_outside_hours_fires_when_hours_begin_if_still_inside() -> None:
    m = matcher(fence("mall", "C1", hours=((8 * 60, 20 * 60),), dwell_seconds=600))
    got, counts = offers(m, (A, "C1", local(7, 30)), (A, "C1", local(7, 45)),
                         (A, "C1", local(7, 55)))  # fmt: skip
    assert got == [] and counts["dwelled"] == 1 and counts["outside_hours"] == 1
    got, counts = offers(m, (A, "C1", local(8, 5)))
    assert got == [(A, "mall", local(7, 30), local(8, 5))]
    assert "dwelled" not in counts and "outside_hours" not in counts


def test_the_audience_bitmap_decides_who_is_asked_for() -> None:
    m = matcher(fence("mall", "C1"))
    m.fences.set_audience(0, BitMap([m.directory.lookup(np.array([B]))[0]]))
    got, counts = offers(m, (A, "C1", local(12)), (B, "C1", local(12)))
    assert [g[0] for g in got] == [B] and counts["not_in_audience"] == 1


@pytest.mark.parametrize(("residents", "expected"), [("once", [True, False]),
                                                    ("repeat", [True, True]),
                                                    ("skip", [False, False])])  # fmt: skip
def test_residents_get_the_offer_once_always_or_never(residents: str, expected: list) -> None:
    m = matcher(fence("campus", "C1", residents=residents))
    m.fences.set_residents(0, BitMap([0]))  # A lives here, B does not
    fired = []
    for day in (0, 1):
        got, _ = offers(m, (A, "C1", local(9, day=day)), (B, "C1", local(9, day=day)),
                        (A, "C3", local(10, day=day)), (B, "C3", local(10, day=day)))  # fmt: skip
        fired.append(A in [g[0] for g in got])
        assert B in [g[0] for g in got]  # not a resident: the daily cap only
    assert fired == expected


def test_the_cap_counts_offers_per_local_day() -> None:
    m = matcher(fence("mall", "C1", cap_per_day=1))
    # 23:50 and 23:55 local are one day; 00:05 the next (16:05 UTC the day before)
    got, counts = offers(m, (A, "C1", local(23, 50)), (A, "C2", local(23, 52)),
                         (A, "C1", local(23, 55)), (A, "C2", local(23, 57)),
                         (A, "C1", local(0, 5, day=1)))  # fmt: skip
    assert [g[3] for g in got] == [local(23, 50), local(0, 5, day=1)]
    assert counts["capped"] == 1


def test_a_sweep_ahead_of_a_subscriber_does_not_reopen_the_day_it_capped() -> None:
    # Given A's offer fired by a sweep on day 1 (the watermark, pushed by B's clock)
    m = matcher(fence("mall", "C1", dwell_seconds=600, cap_per_day=1))
    offers(m, (A, "C1", local(23, 40)), (B, "C3", local(0, 30, day=1)))
    assert _rows(m, m.sweep(m.watermark_ms)) == [(A, "mall", local(23, 40), local(0, 30, day=1))]
    # When A's own clock is still on day 0 and A re-enters: day 0 had no offer yet
    got, _ = offers(m, (A, "C2", local(23, 45)), (A, "C1", local(23, 46)),
                    (A, "C1", local(23, 57)), (A, "C2", local(23, 58)))  # fmt: skip
    assert got == [(A, "mall", local(23, 46), local(23, 57))]
    got, counts = offers(m, (A, "C1", local(0, 2, day=1)), (A, "C1", local(0, 20, day=1)))
    # Then day 1 is still capped by the swept offer
    assert got == [] and counts["capped"] == 1


def test_late_and_repeated_events_are_counted_and_ignored() -> None:
    m = matcher(fence("mall", "C1", dwell_seconds=600))
    offers(m, (A, "C1", local(12)), (A, "C1", local(12, 5)))
    got, counts = offers(m, (A, "C1", local(12, 4)),  # older than 12:05: late
                         (A, "C1", local(12, 5)),  # 12:05 at C1 again: a repeat
                         (A, "C1", local(12, 5)),
                         (A, "C2", local(12, 5)))  # same time, another cell: processed
    assert counts == {"events": 4, "out_of_order": 1, "duplicate": 2, "exits": 1}
    assert got == [] and m.state.inside(0) == []


def test_an_off_grid_cell_ends_every_stay_and_an_unknown_number_is_counted() -> None:
    m = matcher(fence("hall", "C1"), fence("mall", "C1", "C2", dwell_seconds=600))
    offers(m, (A, "C1", local(12)))
    assert len(m.state.inside(0)) == 2
    _, counts = offers(m, (A, "ROAM-JP", local(12, 5)), (8613999999999, "C1", local(12, 6)))
    assert counts == {"events": 2, "off_grid": 1, "exits": 2, "unknown_subscriber": 1}
    assert m.state.inside(0) == []
    _, counts = offers(m, (A, "C2", local(12, 30)))
    assert counts["entries"] == 1  # back: a new stay


def test_a_sweep_fires_dwellers_that_sent_no_new_event_once() -> None:
    m = matcher(fence("airport", "C1", dwell_seconds=900))
    offers(m, (A, "C1", local(8)), (B, "C3", local(8, 10)))
    assert len(m.sweep(local(8, 14)).triggers) == 0
    result = m.sweep(local(8, 15))
    assert _rows(m, result) == [(A, "airport", local(8), local(8, 15))]
    assert result.triggers.received_ms.tolist() == [-1]
    assert len(m.sweep(local(9)).triggers) == 0
    got, _ = offers(m, (A, "C1", local(9, 30)))
    assert got == []  # still the same stay, decided


def test_changed_fences_keep_stays_by_code_and_drop_removed_ones() -> None:
    m = matcher(fence("hall", "C1"), fence("mall", "C1", "C2", dwell_seconds=600))
    offers(m, (A, "C1", local(12)))
    new = CompiledFences.build([fence("park", "C3"), fence("mall", "C1", "C2", dwell_seconds=600),
                                fence("shop", "C2")], CELLS)  # fmt: skip
    m.set_fences(new)
    assert m.state.inside(0) == [(1, local(12))]  # mall, now index 1; the hall is gone
    assert len(m.state.fired) == 0  # the hall's record left with it
    got, counts = offers(m, (A, "C2", local(12, 10)))
    assert got == [(A, "mall", local(12), local(12, 10)), (A, "shop", local(12, 10), local(12, 10))]
    assert counts["entries"] == 1


def test_a_new_directory_keeps_state_by_number() -> None:
    m = matcher(fence("mall", "C1", dwell_seconds=600, cap_per_day=1), numbers=(A, B))
    m.fences.set_audience(0, BitMap([1]))  # B only
    offers(m, (A, "C1", local(12)), (B, "C1", local(12)))
    # Given a directory where A left and C came, shifting B's position
    m.set_directory(Directory.from_arrays([C, B], [3, 2]))
    assert m.directory.lookup(np.array([B])).tolist() == [0]  # was 1
    got, counts = offers(m, (A, "C1", local(12, 10)), (B, "C1", local(12, 10)),
                         (C, "C1", local(12, 10)))  # fmt: skip
    # Then B's stay carried over (entered 12:00), C starts, A is unknown now
    assert got == [(B, "mall", local(12), local(12, 10))]
    assert counts["unknown_subscriber"] == 1 and counts["entries"] == 1


def test_arrow_cells_and_positions_given_by_the_caller() -> None:
    m = matcher(fence("mall", "C2"))
    cells = pa.array(["C2", None, "X", "C2"])
    assert CELLS.lookup(cells).tolist() == [1, -1, -1, 1]
    assert CELLS.lookup(cells.dictionary_encode()).tolist() == [1, -1, -1, 1]
    events = EventBatch(np.array([A, B, C, C]), cells, np.full(4, local(9)), np.zeros(4, np.uint8))
    result = m.process(events, cell_idx=CELLS.lookup(cells))
    assert sorted(result.triggers.msisdn.tolist()) == [A, C]
    assert result.counts["off_grid"] == 2


def test_directory_and_fences_refuse_what_cannot_work() -> None:
    with pytest.raises(InputError, match="duplicate msisdn"):
        Directory.from_arrays([A, B, A], [1, 2, 3])
    with pytest.raises(InputError, match="duplicate cell"):
        CellIndex.from_ids(["C1", "C1"])
    with pytest.raises(InputError, match="code given twice"):
        CompiledFences.build([fence("mall", "C1"), fence("mall", "C2")], CELLS)
    compiled = CompiledFences.build([fence("mall", "C1", "NOPE"), fence("void", "GONE")], CELLS)
    assert compiled.warnings == ["fence mall: 1 cell(s) not in the cell table, dropped: NOPE",
                                 "fence void: 1 cell(s) not in the cell table, dropped: GONE",
                                 "fence void: no cell in the cell table, never matches"]
    directory = Directory.from_arrays([B, A], [20, 10])
    assert directory.positions_of_ids(np.array([10, 20, 30])).tolist() == [0, 1, -1]
    assert directory.lookup(np.array([B, 8613911111111])).tolist() == [1, -1]


def test_directory_and_cells_from_a_warehouse() -> None:
    import datetime as dt

    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.data.warehouse.schema import TABLES

    def table(name: str, rows: list[tuple]) -> pa.Table:
        schema = TABLES[name].schema
        columns = list(zip(*rows, strict=True))
        return pa.table([pa.array(list(c), f.type) for f, c in zip(schema, columns, strict=True)],
                        schema=schema)  # fmt: skip

    def subscriber(sid: int, msisdn: str) -> tuple:
        return (sid, msisdn, "china_mobile", "P1", "prepaid", "active", "F", None,
                dt.date(2015, 6, 1), None, 3, "浦东新区", None, 4, False, None)

    warehouse = open_duckdb(":memory:")
    warehouse.con.create_table("subscribers", table("subscribers", [
        subscriber(7, "+8613900000002"), subscriber(5, "13900000001"), subscriber(9, "+1555")]))
    warehouse.con.create_table("cells", table("cells", [
        ("C9", 31.2, 121.5, "浦东新区", "airport"), ("C1", 31.1, 121.4, "黄浦区", "mall")]))
    directory = Directory.from_warehouse(warehouse)
    cells = CellIndex.from_warehouse(warehouse)
    assert directory.msisdn.tolist() == [A, B] and directory.subscriber_id.tolist() == [5, 7]
    assert directory.dropped == 1  # +1555 is not a Chinese mobile number
    assert cells.lookup(["C1", "C9", "C5"]).tolist() == [1, 0, -1]
    assert cells.kind == ["airport", "mall"] and cells.lat.tolist() == [31.2, 31.1]

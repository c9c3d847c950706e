"""The matcher state on disk and in memory: a checkpoint restored and replayed gives the same
offers (same entries, so the same idempotency keys); a restore under changed fences, a
changed directory or a changed cell table remaps; a crashed save leaves the old file; a
corrupt or foreign file is refused naming it; the state stays small per subscriber."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from jingxin.errors import InputError
from jingxin.geofence.compiled import FENCE_BITS, CompiledFences
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.matcher import Matcher
from jingxin.geofence.state import KeyedTable, MatcherState
from jingxin.geofence.types import EventBatch, Fence

A, B, C = 8613900000001, 8613900000002, 8613900000003
CELLS = CellIndex.from_ids(["C1", "C2", "C3"])
T0 = 1_767_232_800_000  # 2026-01-01 10:00 in Shanghai
MIN = 60_000


def fence(code: str, *cells: str, dwell: int = 600) -> Fence:
    return Fence(code=code, name=code, scenario="mall", cells=cells, template="fence.mall",
                 dwell_seconds=dwell)  # fmt: skip


FENCES = [fence("hall", "C1"), fence("mall", "C1", "C2")]
DIRECTORY = Directory.from_arrays([A, B, C], [1, 2, 3])


def batch(*rows: tuple[int, str, int]) -> EventBatch:
    return EventBatch(np.array([r[0] for r in rows], np.int64), [r[1] for r in rows],
                      np.array([T0 + r[2] * MIN for r in rows], np.int64),
                      np.zeros(len(rows), np.uint8))  # fmt: skip


def keys(m: Matcher, triggers) -> list[str]:
    """The idempotency keys the offers would carry."""
    return sorted(f"fence:{m.fences.codes[f]}:{n}:{e}"
                  for f, n, e in zip(triggers.fence, triggers.msisdn, triggers.entered_ms,
                                     strict=True))  # fmt: skip


FIRST = batch((A, "C1", 0), (B, "C2", 1), (C, "C3", 2))
SECOND = batch((A, "C1", 12), (B, "C2", 13), (C, "C1", 14), (A, "C3", 15))


def test_a_restored_matcher_replaying_the_same_events_asks_for_the_same_offers(tmp_path: Path):
    # Given a matcher checkpointed after the first batch
    m = Matcher(CompiledFences.build(FENCES, CELLS), DIRECTORY, CELLS)
    m.process(FIRST)
    m.checkpoint(tmp_path / "state.npz", {"position": {"0": "17-0"}})
    # When it goes on, crashes before the next checkpoint, restarts and replays
    before = keys(m, m.process(SECOND).triggers)
    again, extra = Matcher.restore(tmp_path / "state.npz", CompiledFences.build(FENCES, CELLS),
                                   DIRECTORY, CELLS)  # fmt: skip
    after = keys(again, again.process(SECOND).triggers)
    # Then the same offers come out with the same keys (the delivery entry dedupes them)
    assert before == after == [f"fence:hall:{A}:{T0}", f"fence:mall:{A}:{T0}",
                               f"fence:mall:{B}:{T0 + MIN}"]  # fmt: skip
    assert extra["position"] == {"0": "17-0"} and extra["fences"] == ["hall", "mall"]
    assert again.watermark_ms == T0 + 15 * MIN
    # And replaying what the checkpoint already held changes nothing
    replay = again.process(FIRST)
    assert len(replay.triggers) == 0 and replay.counts["out_of_order"] == 3


def test_restore_remaps_changed_fences_directory_and_cells(tmp_path: Path) -> None:
    m = Matcher(CompiledFences.build(FENCES, CELLS), DIRECTORY, CELLS)
    m.process(FIRST)
    m.checkpoint(tmp_path / "state.npz")
    # Given: the hall removed, a park added before the mall; A gone, a new number first;
    # the cell table reordered with a new cell
    cells = CellIndex.from_ids(["C0", "C3", "C2", "C1"])
    fences = CompiledFences.build([fence("park", "C0"), fence("mall", "C1", "C2")], cells)
    directory = Directory.from_arrays([8613800000000, B, C], [9, 2, 3])
    m2, _ = Matcher.restore(tmp_path / "state.npz", fences, directory, cells)
    # Then B's mall stay is kept by code and number, A's stays are gone
    assert m2.state.inside(1) == [(1, T0 + MIN)]
    assert m2.state.inside(0) == []
    assert len(m2.state.open) == 1
    # And C's last cell still reads C3: a repeat of it is a duplicate
    assert m2.process(batch((C, "C3", 2))).counts["duplicate"] == 1
    result = m2.process(batch((B, "C1", 11)))
    assert keys(m2, result.triggers) == [f"fence:mall:{B}:{T0 + MIN}"]


def test_a_save_that_fails_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    m = Matcher(CompiledFences.build(FENCES, CELLS), DIRECTORY, CELLS)
    m.process(FIRST)
    path = tmp_path / "state.npz"
    m.checkpoint(path, {"n": 1})
    m.process(SECOND)

    def disk_full(*args, **kwargs) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        m.checkpoint(path, {"n": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]  # no temporary left
    state, extra = MatcherState.load(path)
    assert extra["n"] == 1 and state.watermark_ms == T0 + 2 * MIN


def test_a_corrupt_or_foreign_checkpoint_is_refused_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(InputError, match=r"garbage\.npz"):
        MatcherState.load(garbage)
    good = tmp_path / "good.npz"
    m = Matcher(CompiledFences.build(FENCES, CELLS), DIRECTORY, CELLS)
    m.process(FIRST)
    m.checkpoint(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match=r"truncated\.npz"):
        MatcherState.load(truncated)
    other = tmp_path / "other.npz"
    with np.load(good) as data:
        arrays = dict(data)
    arrays["meta"] = np.frombuffer(b'{"format": "jingxin-geofence-state/0"}', np.uint8)
    np.savez(other, **arrays)
    with pytest.raises(InputError, match=r"other\.npz.*format"):
        MatcherState.load(other)
    arrays["meta"] = np.frombuffer(b'{"format": "jingxin-geofence-state/1"}', np.uint8)
    arrays["open_key"] = arrays["open_key"][::-1].copy()
    np.savez(tmp_path / "unsorted.npz", **arrays)
    with pytest.raises(InputError, match=r"unsorted\.npz.*not sorted"):
        MatcherState.load(tmp_path / "unsorted.npz")
    assert zipfile.is_zipfile(good)


def test_a_subscriber_costs_a_few_dozen_bytes(tmp_path: Path) -> None:
    n = 1_000_000
    numbers = 8613900000000 + np.arange(n, dtype=np.int64) * 7
    directory = Directory.from_arrays(numbers, np.arange(n))
    m = Matcher(CompiledFences.build(FENCES, CELLS), directory, CELLS)
    inside = EventBatch(numbers[:1000], ["C2"] * 1000, np.full(1000, T0), np.zeros(1000, np.uint8))
    m.process(inside)
    per_subscriber = m.state.memory_bytes() / n
    assert 20 <= per_subscriber < 21  # msisdn 8 + last ts 8 + last cell 4, stays aside
    assert len(m.state.open) == 1000


@pytest.mark.parametrize("merge_at", [1, 64, 4096])
def test_a_keyed_table_updated_in_batches_reads_like_a_dict(merge_at: int) -> None:
    # Given random batches of range deletions and upserts, merging often, sometimes, never
    rng = np.random.default_rng(merge_at)
    table = KeyedTable.empty({"entered": np.int64, "decided": np.uint8})
    table.merge_at = merge_at
    model: dict[int, tuple[int, int]] = {}
    for _ in range(300):
        subs = np.unique(rng.integers(0, 40, rng.integers(1, 8)))
        base = subs.astype(np.int64) << FENCE_BITS
        killed = table.kill_ranges(base, base + (1 << FENCE_BITS))
        gone = [k for k in model if (k >> FENCE_BITS) in set(subs.tolist())]
        assert killed == len(gone)
        for k in gone:
            del model[k]
        keys = (rng.choice(subs, 5).astype(np.int64) << FENCE_BITS) | rng.integers(0, 3, 5)
        keys = np.unique(keys)
        entered, decided = rng.integers(0, 10**9, len(keys)), rng.integers(0, 3, len(keys))
        table.upsert(keys, {"entered": entered, "decided": decided})
        model.update({int(k): (int(e), int(d)) for k, e, d in zip(keys, entered, decided,
                                                                     strict=True)})  # fmt: skip
        # Then lookups, the size and the merged view always agree with the dict
        probe = ((np.arange(41, dtype=np.int64)[:, None] << FENCE_BITS) | np.arange(4)).ravel()
        found, values = table.find(probe)
        expected = [model.get(int(k)) for k in probe]
        assert found.tolist() == [e is not None for e in expected]
        assert [(int(e), int(d)) for e, d, f in zip(values["entered"], values["decided"], found,
                                                    strict=True) if f] == [e for e in expected if e]
        assert len(table) == len(model) and table.snapshot() == model
    key, columns = table.items()
    assert key.tolist() == sorted(model) and len(table.delta.key) == 0
    assert columns["entered"].tolist() == [model[k][0] for k in sorted(model)]

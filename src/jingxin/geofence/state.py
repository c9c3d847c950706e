"""The matcher's per-subscriber state as packed numpy arrays, and its checkpoint file.

Three parts, none of them a Python object per subscriber:

* per directory position: ``last_ts`` (int64 ms; ``NO_TS`` never seen) and ``last_cell``
  (int32 cell position; -1 off grid, ``NO_CELL`` never seen): 12 bytes a subscriber, what
  out-of-order and duplicate detection need;
* ``open``: the open stays, only of subscribers inside some fence, keyed
  ``(sub << FENCE_BITS) | fence`` with ``entered`` (int64 ms) and ``decided`` (uint8: 0
  waiting for the dwell, 1 dwelled outside the fence's hours, 2 decided). A batch closes
  every stay of the subscribers it holds and upserts the ones still open;
* ``fired``: one record per (subscriber, fence) ever offered: ``day`` (local day number of
  the last offer) and ``count`` (offers that day). The record existing is the "ever
  fired" flag residents=once needs, so records are kept.

Both keyed parts are a :class:`KeyedTable`: sorted keys searched with ``np.searchsorted``.
With a million subscribers inside fences, copying the table per batch (np.insert) would
cost more than matching, so a batch marks closed stays dead in place, revives or updates
keys it finds, and only inserts keys it does not find into a small second sorted part;
the two are merged (one O(n) pass) when the small one passes 1/16 of the big one or a
quarter is dead. Checkpoints, remaps and :meth:`KeyedTable.items` see the merged table.

The state also holds what its positions mean: ``msisdn`` (the directory's numbers, shared,
not copied) and ``cell_ids`` (the cell index's ids). A checkpoint stores them so a restart
with another directory or cell table can remap (``remap_subscribers``, ``remap_cells``).

Checkpoint file: one ``.npz`` (no pickle) with every array plus ``meta``: JSON bytes with
the format version, the watermark and the caller's ``extra`` (the matcher adds the fence
codes and the directory and cell fingerprints; the runner its source position and
counts). ``save`` writes a temporary file in the same directory, fsyncs it and
``os.replace``-s it over the old one: a crash leaves the old checkpoint or the new one,
never half of one. ``load`` raises InputError naming the file if it is not such a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jingxin.errors import InputError
from jingxin.geofence.compiled import FENCE_BITS

FORMAT = "jingxin-geofence-state/1"
NO_TS = np.iinfo(np.int64).min
NO_CELL = -2
FENCE_MASK = (1 << FENCE_BITS) - 1
WAITING, OUTSIDE_HOURS, DECIDED = 0, 1, 2
OPEN = {"entered": np.int64, "decided": np.uint8}
FIRED = {"day": np.int32, "count": np.uint8}
_EMPTY = np.empty(0, np.int64)


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The indices of the half-open ranges [lo[i], hi[i]) concatenated, without a loop."""
    length = (hi - lo).astype(np.int64)
    before = np.cumsum(length) - length
    return np.repeat(lo.astype(np.int64) - before, length) + np.arange(int(length.sum()))


def _locate(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each wanted key in sorted ``keys`` (-1 absent)."""
    if not len(keys):
        return np.full(len(wanted), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, at, -1)


class _Part:
    """Sorted keys, their columns and a live flag (dead: deleted, awaiting a merge)."""

    def __init__(self, key: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.key, self.columns, self.live = key, columns, np.ones(len(key), bool)


class KeyedTable:
    """int64 keys -> typed columns, updated a batch at a time (module docstring)."""

    merge_at = 4096  # the parts merge past max(merge_at, a share of the big part)

    def __init__(self, key: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.dtypes = {name: column.dtype for name, column in columns.items()}
        self.main = _Part(key, columns)
        self.delta = self._empty_part()
        self.dead = 0

    @classmethod
    def empty(cls, dtypes: dict[str, Any]) -> KeyedTable:
        return cls(_EMPTY.copy(), {n: np.empty(0, t) for n, t in dtypes.items()})

    def _empty_part(self) -> _Part:
        return _Part(_EMPTY.copy(), {n: np.empty(0, t) for n, t in self.dtypes.items()})

    def parts(self) -> tuple[_Part, _Part]:
        return self.main, self.delta

    def __len__(self) -> int:
        return len(self.main.key) + len(self.delta.key) - self.dead

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(found, columns) of each wanted key among the live entries (0 where absent)."""
        found = np.zeros(len(wanted), bool)
        out = {n: np.zeros(len(wanted), t) for n, t in self.dtypes.items()}
        for part in self.parts():
            at = _locate(part.key, wanted)
            hit = np.flatnonzero(at >= 0)
            hit = hit[part.live[at[hit]]]
            for name, column in part.columns.items():
                out[name][hit] = column[at[hit]]
            found[hit] = True
        return found, out

    def kill_ranges(self, lo: np.ndarray, hi: np.ndarray) -> int:
        """Delete the live entries with lo[i] <= key < hi[i] (ranges sorted, disjoint);
        how many there were."""
        killed = 0
        bounds = np.stack([lo, hi], axis=1).ravel()  # still sorted: one search for both
        for part in self.parts():
            found = np.searchsorted(part.key, bounds)
            at = ranges(found[0::2], found[1::2])
            killed += int(np.count_nonzero(part.live[at]))
            part.live[at] = False
        self.dead += killed
        return killed

    def upsert(self, key: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Set the entries of ``key`` (sorted, unique), live again if they were deleted."""
        pending = np.arange(len(key))
        for part in self.parts():
            at = _locate(part.key, key[pending])
            hit = at >= 0
            at, rows = at[hit], pending[hit]
            self.dead -= int(np.count_nonzero(~part.live[at]))
            part.live[at] = True
            for name, column in part.columns.items():
                column[at] = values[name][rows]
            pending = pending[~hit]
        if len(pending):
            delta = self.delta
            at = np.searchsorted(delta.key, key[pending])
            delta.key = np.insert(delta.key, at, key[pending])
            delta.live = np.insert(delta.live, at, True)
            for name in self.dtypes:
                delta.columns[name] = np.insert(delta.columns[name], at,
                                                values[name][pending].astype(self.dtypes[name]))
        big = len(self.main.key)
        if len(self.delta.key) > max(self.merge_at, big // 16) or self.dead > max(
                self.merge_at, big // 4):
            self.compact()

    def compact(self) -> None:
        """Merge the two parts, dropping deleted entries: one sorted, all-live part."""
        if not len(self.delta.key) and not self.dead:
            return
        main, delta = self.main, self.delta
        keep, add = np.flatnonzero(main.live), np.flatnonzero(delta.live)
        at = np.searchsorted(main.key[keep], delta.key[add])
        key = np.insert(main.key[keep], at, delta.key[add])
        columns = {n: np.insert(main.columns[n][keep], at, delta.columns[n][add])
                   for n in self.dtypes}  # fmt: skip
        self.main, self.delta, self.dead = _Part(key, columns), self._empty_part(), 0

    def items(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The merged table: sorted live keys and their columns."""
        self.compact()
        return self.main.key, self.main.columns

    def snapshot(self) -> dict[int, tuple]:
        """The live entries as a dict (key -> column values), leaving the parts as they
        are: for tests and show."""
        return {int(k): tuple(int(p.columns[n][i]) for n in self.dtypes)
                for p in self.parts() for i, k in enumerate(p.key) if p.live[i]}  # fmt: skip

    def remap(self, remap: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
              ) -> KeyedTable:  # fmt: skip
        """A table with keys rewritten by ``remap(sub, fence) -> (sub, fence)`` (-1: drop)."""
        key, columns = self.items()
        sub, fence = remap(key >> FENCE_BITS, key & FENCE_MASK)
        keep = (sub >= 0) & (fence >= 0)
        new_key = (sub[keep].astype(np.int64) << FENCE_BITS) | fence[keep]
        order = np.argsort(new_key, kind="stable")
        return KeyedTable(new_key[order], {n: c[keep][order] for n, c in columns.items()})

    def nbytes(self) -> int:
        return int(sum(p.key.nbytes + p.live.nbytes + sum(c.nbytes for c in p.columns.values())
                       for p in self.parts()))  # fmt: skip


class MatcherState:
    """The matcher's memory (module docstring)."""

    def __init__(self, msisdn: np.ndarray, cell_ids: Sequence[str], last_ts: np.ndarray,
                 last_cell: np.ndarray, open: KeyedTable | None = None,
                 fired: KeyedTable | None = None, watermark_ms: int = -1) -> None:  # fmt: skip
        self.msisdn, self.cell_ids = msisdn, cell_ids
        self.last_ts, self.last_cell = last_ts, last_cell
        self.open = open if open is not None else KeyedTable.empty(OPEN)
        self.fired = fired if fired is not None else KeyedTable.empty(FIRED)
        self.watermark_ms = watermark_ms

    @property
    def open_key(self) -> np.ndarray:
        """The open stays' keys, merged (O(n) when the parts need a merge): prefer
        ``len(state.open)`` for a count."""
        return self.open.items()[0]

    @property
    def fired_key(self) -> np.ndarray:
        return self.fired.items()[0]

    @classmethod
    def empty(cls, msisdn: np.ndarray, cell_ids: Sequence[str]) -> MatcherState:
        n = len(msisdn)
        return cls(msisdn, cell_ids, np.full(n, NO_TS, np.int64), np.full(n, NO_CELL, np.int32))

    def replace_open(self, subs: np.ndarray, key: np.ndarray, entered: np.ndarray,
                     decided: np.ndarray) -> int:  # fmt: skip
        """Close every open stay of ``subs`` (sorted, unique) but those in ``key`` (sorted,
        unique, of those subscribers), which are set to ``entered``/``decided``. Returns
        how many stays were open before."""
        base = subs.astype(np.int64) << FENCE_BITS
        was_open = self.open.kill_ranges(base, base + (1 << FENCE_BITS))
        if len(key):
            self.open.upsert(key, {"entered": entered, "decided": decided})
        return was_open

    def inside(self, sub: int) -> list[tuple[int, int]]:
        """(fence, entered_ms) of the subscriber's open stays."""
        key, columns = self.open.items()
        lo, hi = np.searchsorted(key, [sub << FENCE_BITS, (sub + 1) << FENCE_BITS])
        return [(int(k & FENCE_MASK), int(e))
                for k, e in zip(key[lo:hi], columns["entered"][lo:hi], strict=True)]  # fmt: skip

    # --- remaps ---------------------------------------------------------------------
    def remap_fences(self, new_fence: np.ndarray) -> None:
        """Fences changed: ``new_fence[old]`` is each old fence's new index (-1 removed:
        its stays and records drop)."""
        self.open = self.open.remap(lambda sub, fence: (sub, new_fence[fence]))
        self.fired = self.fired.remap(lambda sub, fence: (sub, new_fence[fence]))

    def remap_subscribers(self, new_position: np.ndarray, msisdn: np.ndarray) -> None:
        """The directory changed: ``new_position[old]`` (-1 left), ``msisdn`` the new one."""
        moved = new_position >= 0
        last_ts = np.full(len(msisdn), NO_TS, np.int64)
        last_cell = np.full(len(msisdn), NO_CELL, np.int32)
        last_ts[new_position[moved]] = self.last_ts[moved]
        last_cell[new_position[moved]] = self.last_cell[moved]
        self.msisdn, self.last_ts, self.last_cell = msisdn, last_ts, last_cell
        self.open = self.open.remap(lambda sub, fence: (new_position[sub], fence))
        self.fired = self.fired.remap(lambda sub, fence: (new_position[sub], fence))

    def remap_cells(self, new_cell: np.ndarray, cell_ids: Sequence[str]) -> None:
        """The cell table changed: ``new_cell[old]`` (-1: now off grid)."""
        known = self.last_cell >= 0
        self.last_cell[known] = new_cell[self.last_cell[known]]
        self.cell_ids = cell_ids

    # --- size and files -------------------------------------------------------------
    def memory_bytes(self) -> int:
        """Bytes of every array held (``msisdn`` is the directory's, shared)."""
        return int(self.msisdn.nbytes + self.last_ts.nbytes + self.last_cell.nbytes
                   + self.open.nbytes() + self.fired.nbytes())  # fmt: skip

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"msisdn": self.msisdn, "last_ts": self.last_ts, "last_cell": self.last_cell}
        for table, name in ((self.open, "open"), (self.fired, "fired")):
            key, columns = table.items()
            arrays[f"{name}_key"] = key
            arrays.update({f"{name}_{column}": values for column, values in columns.items()})
        return arrays

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Write atomically (module docstring). ``extra`` must be JSON-able."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"format": FORMAT, "watermark_ms": int(self.watermark_ms),
                           "extra": extra}).encode()  # fmt: skip
        arrays = self._arrays()
        arrays["cell_ids"] = np.array(list(self.cell_ids), dtype=str)
        arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
        atomic_savez(path, **arrays)
        _fsync_directory(path.parent)

    @classmethod
    def load(cls, path: Path) -> tuple[MatcherState, dict[str, Any]]:
        path = Path(path)
        names = ["msisdn", "last_ts", "last_cell", "cell_ids", "meta", "open_key", "fired_key",
                 *(f"open_{c}" for c in OPEN), *(f"fired_{c}" for c in FIRED)]  # fmt: skip
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in names}
            meta = json.loads(arrays["meta"].tobytes().decode())
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"checkpoint {path}: not a geofence matcher state ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise InputError(f"checkpoint {path}: format {found!r}, this version reads {FORMAT}")
        problem = _problem(arrays)
        if problem:
            raise InputError(f"checkpoint {path}: {problem}")
        tables = {name: KeyedTable(arrays[f"{name}_key"].astype(np.int64), {
            c: arrays[f"{name}_{c}"].astype(t) for c, t in dtypes.items()})
            for name, dtypes in (("open", OPEN), ("fired", FIRED))}  # fmt: skip
        state = cls(arrays["msisdn"].astype(np.int64), arrays["cell_ids"].tolist(),
                    arrays["last_ts"].astype(np.int64), arrays["last_cell"].astype(np.int32),
                    tables["open"], tables["fired"], int(meta.get("watermark_ms", -1)))  # fmt: skip
        return state, dict(meta.get("extra") or {})


def _problem(arrays: dict[str, np.ndarray]) -> str | None:
    n = len(arrays["msisdn"])
    if len(arrays["last_ts"]) != n or len(arrays["last_cell"]) != n:
        return "per-subscriber arrays differ in length"
    for table, columns in (("open", OPEN), ("fired", FIRED)):
        key = arrays[f"{table}_key"]
        if any(len(arrays[f"{table}_{c}"]) != len(key) for c in columns):
            return f"{table} arrays differ in length"
        if len(key) and (np.any(key[1:] <= key[:-1]) or key[-1] >> FENCE_BITS >= n):
            return f"{table} keys not sorted or past the directory"
    if len(arrays["last_cell"]) and arrays["last_cell"].max() >= len(arrays["cell_ids"]):
        return "a last cell past the cell table"
    return None


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is (POSIX; not on Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` all or nothing: a temporary file in the same directory,
    flushed to disk, renamed over the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

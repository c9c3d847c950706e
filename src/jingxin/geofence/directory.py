"""Who and where, as positions: the subscriber directory and the cell index.

The matcher never keeps a Python object per subscriber or per cell. A subscriber is its
position in :class:`Directory` (numbers sorted, found with ``np.searchsorted``); a cell is
its position in :class:`CellIndex`, found for a whole Arrow array at once through a hash
table built once (``_StringTable``: ~1.5 ms per 20k events against 200k cells). Every
per-subscriber array of the matcher state is indexed by directory position, so a new
directory means a remap by number (``Matcher.set_directory``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jingxin.errors import InputError
from jingxin.geofence.types import to_msisdn_int

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse


class Directory:
    """The subscribers the matcher knows: ``msisdn`` (int64, sorted, unique) and the
    warehouse ``subscriber_id`` at the same position."""

    def __init__(self, msisdn: np.ndarray, subscriber_id: np.ndarray) -> None:
        # Trusted: callers use from_arrays / from_warehouse, which sort and check.
        self.msisdn = msisdn
        self.subscriber_id = subscriber_id
        self._by_id: np.ndarray | None = None  # argsort of subscriber_id, built on demand
        self._fingerprint: str | None = None
        self.dropped = 0  # numbers from_warehouse left out (not a Chinese mobile number)

    @classmethod
    def from_arrays(cls, msisdn: Any, subscriber_id: Any, *,
                    source: str = "directory") -> Directory:  # fmt: skip
        numbers = np.asarray(msisdn, dtype=np.int64)
        ids = np.asarray(subscriber_id, dtype=np.int64)
        if numbers.shape != ids.shape or numbers.ndim != 1:
            raise InputError(f"{source}: msisdn and subscriber_id differ in length "
                             f"({numbers.shape} vs {ids.shape})")  # fmt: skip
        order = np.argsort(numbers, kind="stable")
        numbers, ids = numbers[order], ids[order]
        same = np.flatnonzero(numbers[1:] == numbers[:-1])
        if len(same):
            sample = ", ".join(f"+{n}" for n in numbers[same[:3]])
            raise InputError(f"{source}: {len(same)} duplicate msisdn(s), e.g. {sample}")
        return cls(numbers, ids)

    @classmethod
    def from_warehouse(cls, warehouse: Warehouse) -> Directory:
        """Warehouse table ``subscribers`` (msisdn text, subscriber_id). Numbers that are
        not a Chinese mobile number are left out (``.dropped`` says how many)."""
        table = warehouse.table("subscribers").select("msisdn", "subscriber_id").to_pyarrow()
        numbers, bad = to_msisdn_int(table.column("msisdn").combine_chunks())
        ids = table.column("subscriber_id").to_numpy().astype(np.int64, copy=False)
        directory = cls.from_arrays(numbers[~bad], ids[~bad], source="warehouse table subscribers")
        directory.dropped = int(bad.sum())
        return directory

    def lookup(self, msisdn: np.ndarray) -> np.ndarray:
        """The position of each number (int32), -1 where it is not in the directory."""
        numbers = np.asarray(msisdn, dtype=np.int64)
        if len(self.msisdn) == 0:
            return np.full(len(numbers), -1, np.int32)
        if len(numbers) > 64 and np.any(numbers[1:] < numbers[:-1]):
            # Sorted needles walk the same paths down the search: ~4x faster on 10M numbers
            # than random ones, sort included.
            order = np.argsort(numbers)
            found = np.empty(len(numbers), np.int32)
            found[order] = self.lookup(numbers[order])
            return found
        pos = np.searchsorted(self.msisdn, numbers)
        pos = np.minimum(pos, len(self.msisdn) - 1)
        return np.where(self.msisdn[pos] == numbers, pos, -1).astype(np.int32)

    def positions_of_ids(self, subscriber_id: np.ndarray) -> np.ndarray:
        """The position of each warehouse subscriber id (int32), -1 where unknown."""
        ids = np.asarray(subscriber_id, dtype=np.int64)
        if len(self.subscriber_id) == 0:
            return np.full(len(ids), -1, np.int32)
        if self._by_id is None:
            self._by_id = np.argsort(self.subscriber_id, kind="stable").astype(np.int32)
        sorted_ids = self.subscriber_id[self._by_id]
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == ids, self._by_id[at], -1).astype(np.int32)

    def fingerprint(self) -> str:
        """A hash of the numbers in order: equal fingerprints, equal positions."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(np.ascontiguousarray(self.msisdn).tobytes(), digest_size=16)
            self._fingerprint = f"{len(self.msisdn)}:{digest.hexdigest()}"
        return self._fingerprint

    def memory_bytes(self) -> int:
        extra = 0 if self._by_id is None else self._by_id.nbytes
        return int(self.msisdn.nbytes + self.subscriber_id.nbytes + extra)

    def __len__(self) -> int:
        return len(self.msisdn)


class CellIndex:
    """The cell table as positions: ``ids[i]`` is cell ``i``. From the warehouse it also
    keeps ``lat``, ``lon`` (float64), ``district`` and ``kind`` (lists) by position."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._position = {cell: i for i, cell in enumerate(ids)}
        self.lat: np.ndarray | None = None
        self.lon: np.ndarray | None = None
        self.district: list[str] | None = None
        self.kind: list[str] | None = None
        self._fingerprint: str | None = None
        self._table: _StringTable | None = None
        if ids and len(self._position) == len(ids) and all(len(c.encode()) <= _MAX_ID_BYTES
                                                           for c in ids):  # fmt: skip
            table = _StringTable(ids)
            self._table = table if table.usable else None

    @classmethod
    def from_ids(cls, ids: Iterable[str], *, source: str = "cells") -> CellIndex:
        cells = [str(c) for c in ids]
        index = cls(cells)
        if len(index._position) != len(cells):
            twice = [c for c, n in Counter(cells).items() if n > 1]
            raise InputError(f"{source}: {len(twice)} duplicate cell id(s), e.g. {twice[:3]}")
        return index

    @classmethod
    def from_warehouse(cls, warehouse: Warehouse) -> CellIndex:
        table = warehouse.table("cells").select("cell_id", "lat", "lon", "district", "kind")
        data = table.to_pyarrow()
        index = cls.from_ids(data.column("cell_id").to_pylist(), source="warehouse table cells")
        index.lat = data.column("lat").to_numpy().astype(np.float64)
        index.lon = data.column("lon").to_numpy().astype(np.float64)
        index.district = data.column("district").to_pylist()
        index.kind = data.column("kind").to_pylist()
        return index

    def lookup(self, cells: Any) -> np.ndarray:
        """The position of each cell id (int32), -1 where it is not in the table (off grid,
        null). ``cells``: an Arrow string array (plain, chunked or dictionary) or a list."""
        import pyarrow as pa

        if self._table is not None and not isinstance(cells, pa.Array | pa.ChunkedArray):
            try:
                cells = pa.array(cells, type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # not all text: looked up one by one below
        if isinstance(cells, pa.ChunkedArray):
            cells = cells.combine_chunks()
        if isinstance(cells, pa.Array) and pa.types.is_dictionary(cells.type):
            found = np.append(self.lookup(cells.dictionary), np.int32(-1))
            indices = cells.indices.cast(pa.int64()).fill_null(-1)
            return found[indices.to_numpy(zero_copy_only=False)]
        if isinstance(cells, pa.Array) and self._table is not None:
            return self._table.find(cells)
        values = cells.to_pylist() if isinstance(cells, pa.Array) else cells
        get = self._position.get
        return np.fromiter((get(c, -1) for c in values), dtype=np.int32, count=len(values))

    def places(self, cells: Sequence[str]) -> list[dict[str, Any]]:
        """Each of ``cells`` with what the table says of it: ``cell``, ``lat``, ``lon``,
        ``district``, ``kind`` (all but the id None when the table lacks it, or has no
        coordinates)."""
        found = self.lookup(list(cells)).tolist()
        placed = self.lat is not None and self.lon is not None
        out = []
        for cell, i in zip(cells, found, strict=True):
            known = i >= 0 and placed
            out.append({"cell": cell,
                        "lat": float(self.lat[i]) if known else None,  # type: ignore[index]
                        "lon": float(self.lon[i]) if known else None,  # type: ignore[index]
                        "district": self.district[i] if known and self.district else None,
                        "kind": self.kind[i] if known and self.kind else None})  # fmt: skip
        return out

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.blake2b("\n".join(self.ids).encode(), digest_size=16)
            self._fingerprint = f"{len(self.ids)}:{digest.hexdigest()}"
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.ids)


_MAX_ID_BYTES = 32  # longer cell ids: the dict path
_MIX = np.uint64(0x9E3779B97F4A7C15)
_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


class _StringTable:
    """Short strings -> positions, looked up a whole Arrow array at a time.

    Written here because nothing at hand keeps a hash table across calls: Arrow's
    ``index_in`` rebuilds its value set per call (~24 ms for 200k cells), a dict or a
    pandas object Index hashes one Python str at a time (~16-20 ms per 20k events). Ids
    are read straight from the Arrow buffers as zero-padded uint64 words and hashed with
    numpy; the table (open addressing, linear probing, a quarter full) is probed by
    64-bit hash only, each round over the events still looking, and a hit is confirmed on
    the words once at the end. The table's own hashes are distinct (else ``usable`` is
    False and the caller uses a dict), so an id of the table can only stop at itself."""

    def __init__(self, ids: list[str]) -> None:
        import pyarrow as pa

        longest = max((len(c.encode()) for c in ids), default=1)
        self.n_words = max(1, -(-longest // 8))
        words, self.lengths, _ = _words(pa.array(ids, type=pa.string()), self.n_words)
        self.columns = [np.ascontiguousarray(words[:, j]) for j in range(self.n_words)]
        self.hashes = _hash(words, self.lengths)
        self.usable = len(np.unique(self.hashes)) == len(ids)
        size = 1 << max(4, (4 * len(ids)).bit_length())  # at most a quarter full
        self.mask = size - 1
        self.slots = np.full(size, -1, np.int32)
        pending = np.arange(len(ids))
        slot = (self.hashes & np.uint64(self.mask)).astype(np.int64)
        while len(pending):  # vectorised inserts: per free slot the first claimant wins
            aim = slot[pending]
            free = np.flatnonzero(self.slots[aim] < 0)
            taken, first = np.unique(aim[free], return_index=True)
            self.slots[taken] = pending[free[first]]
            won = np.zeros(len(pending), bool)
            won[free[first]] = True
            pending = pending[~won]
            slot[pending] = (slot[pending] + 1) & self.mask

    def find(self, cells: Any) -> np.ndarray:
        words, lengths, fits = _words(cells, self.n_words)
        hashes = _hash(words, lengths)
        found = np.full(len(lengths), -1, np.int32)
        active = np.flatnonzero(fits)
        slot = (hashes[active] & np.uint64(self.mask)).astype(np.int64)
        while len(active):
            cand = self.slots[slot]
            same = self.hashes[cand] == hashes[active]  # cand -1 reads the last: checked below
            found[active[same & (cand >= 0)]] = cand[same & (cand >= 0)]
            more = (cand >= 0) & ~same  # another id in the slot: probe the next one
            active, slot = active[more], (slot[more] + 1) & self.mask
        hit = np.flatnonzero(found >= 0)
        ok = self.lengths[found[hit]] == lengths[hit]
        for j, column in enumerate(self.columns):
            ok &= column[found[hit]] == words[hit, j]
        found[hit[~ok]] = -1
        return found


def _words(cells: Any, n_words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, n_words) uint64 of each string's bytes zero-padded, byte lengths, and a mask
    of those that are not null and fit. A word is read at any byte offset from one of
    eight copies of the data shifted by 0..7 bytes: 1-D gathers, no per-byte work."""
    import pyarrow as pa

    if not (pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type)):
        cells = cells.cast(pa.string())
    wide = pa.types.is_large_string(cells.type)
    buffers = cells.buffers()
    offsets = np.frombuffer(buffers[1], np.int64 if wide else np.int32)
    offsets = offsets[cells.offset:cells.offset + len(cells) + 1].astype(np.int64)
    lengths = np.diff(offsets)
    fits = lengths <= 8 * n_words
    if cells.null_count:
        fits &= ~cells.is_null().to_numpy(zero_copy_only=False)
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.empty(0, np.uint8)
    start = offsets[0] if len(offsets) else 0
    end = offsets[-1] if len(offsets) else 0
    rows = (end - start) // 8 + n_words + 1
    padded = np.zeros(8 * rows + 8, np.uint8)
    padded[:end - start] = data[start:end]
    shifted = np.stack([padded[k:k + 8 * rows].view("<u8") for k in range(8)])
    words = np.empty((len(lengths), n_words), np.uint64)
    at = np.where(fits, offsets[:-1] - start, 0)
    for j in range(n_words):
        byte = at + 8 * j
        keep = np.where(fits, np.clip(lengths - 8 * j, 0, 8), 0)
        words[:, j] = shifted[byte & 7, byte >> 3] & _BYTE_MASKS[keep]
    return words, lengths, fits


_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)  # the first k bytes


def _hash(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each word folded in, then MurmurHash3's 64-bit finaliser (all bits reach the low
    ones the table uses: ids often differ only in their last characters)."""
    h = lengths.astype(np.uint64) * _MIX
    for j in range(words.shape[1]):
        h = (h ^ words[:, j]) * _MIX
    for multiplier in (_FMIX1, _FMIX2):
        h ^= h >> np.uint64(33)
        h *= multiplier
    return h ^ (h >> np.uint64(33))

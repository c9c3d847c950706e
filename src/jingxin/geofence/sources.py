"""Where location events come from in one process: a replay file and an in-process queue
(Redis Streams are :mod:`jingxin.geofence.streams`).

:class:`FileReplay` streams a CSV (header ``msisdn,cell,ts,type``) or Parquet file of the
same columns in Arrow batches and converts each batch at once, no Python object per
event; what the columns may hold (``ts`` as ISO-8601, epoch ms or a timestamp; ``type``
optional) and why a row is bad is :mod:`jingxin.geofence.eventcols`.

A bad row never costs the batch around it: a row with the wrong number of fields is
skipped by the CSV reader's handler, every other row is checked column by column, and
either way it is counted ``malformed`` with the first few kept as ``file:line: reason``
(a CSV line is the data row + 2: the header is line 1). Blank lines are no events and are
skipped silently.

Resuming: ``position()`` is ``{"file", "row"}``, the data rows consumed (emitted or found
malformed); ``FileReplay(path, start_row=row)`` goes on after them. ``counts()`` and
``samples`` cover exactly those rows, never the chunk read ahead, so a checkpoint's counts
and position agree and a resumed replay counts each bad row once. ``speed`` paces the
replay by event time: no event goes out before ``start + (ts - first ts) / speed``.
"""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import InputError
from jingxin.geofence.eventcols import COLUMNS, check_columns, sample_reasons
from jingxin.geofence.types import EventBatch

MAX_SAMPLES = 10
LOCAL_OFFSET_SECONDS = 8 * 3600  # Asia/Shanghai: no daylight saving since 1991


@dataclass
class _Chunk:
    batch: EventBatch  # the good rows
    rows: np.ndarray  # data row index of each good row
    end_row: int  # data rows consumed once this chunk is emitted


class _Malformed:
    """A replay's malformed rows, counted (and the first few shown) only once the position
    passes them: rows are checked a whole chunk ahead of what ``read`` hands out, and a
    count beyond ``position()`` would be counted again by a replay resumed there."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []  # "file:line: reason" of the first MAX_SAMPLES passed
        self._ahead: list[np.ndarray] = []  # data rows found, not yet passed
        self._loose: list[int] = []  # the same, one at a time (the CSV reader's handler)
        self._said: list[tuple[int, str]] = []  # (row, sample) ahead, earliest first

    def room(self) -> int:
        return max(0, MAX_SAMPLES - len(self.shown))

    def found(self, rows: np.ndarray, samples: list[tuple[int, str]]) -> None:
        if len(rows):
            self._ahead.append(rows)
        self._say(samples)

    def found_one(self, row: int, sample: str) -> None:
        self._loose.append(row)
        self._say([(row, sample)])

    def passed(self, upto: int) -> None:
        """Count and show what lies before data row ``upto`` (the new position)."""
        if self._loose:
            self._ahead.append(np.asarray(self._loose, np.int64))
            self._loose = []
        if self._ahead:
            rows = np.concatenate(self._ahead) if len(self._ahead) > 1 else self._ahead[0]
            behind = rows < upto
            self.count += int(behind.sum())
            self._ahead = [] if behind.all() else [rows[~behind]]
        if self._said and self._said[0][0] < upto:
            self.shown += [text for row, text in self._said if row < upto]
            self._said = [(row, text) for row, text in self._said if row >= upto]

    def _say(self, samples: list[tuple[int, str]]) -> None:
        # Only the earliest rows can ever be shown: keep no more than there is room for.
        room = self.room()
        if samples and room and (len(self._said) < room or min(samples)[0] < self._said[-1][0]):
            self._said = sorted(self._said + samples)[:room]


class FileReplay:
    """Events replayed from a CSV or Parquet file (see the module docstring). A file that
    cannot be read or lacks a column is refused here, by name; ``samples`` holds the
    first malformed rows as ``file:line: reason`` (Parquet: ``file:row N: reason``)."""

    def __init__(self, path: str | Path, *, speed: float | None = None, start_row: int = 0,
                 batch_rows: int = 50_000,
                 utc_offset_seconds: int = LOCAL_OFFSET_SECONDS) -> None:  # fmt: skip
        if speed is not None and not speed > 0:
            raise InputError(f"speed: {speed} must be a positive factor (or none: full speed)")
        if start_row < 0:
            raise InputError(f"start_row: {start_row} must be >= 0")
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.speed = speed
        self._malformed = _Malformed()
        self._offset_s = utc_offset_seconds
        self._start_row = start_row
        self._row = start_row
        self._batch_rows = max(1, batch_rows)
        self._clock: tuple[float, int] | None = None  # (wall start, first ts) for pacing
        self._chunk: _Chunk | None = None
        self._at = 0  # next row of self._chunk
        self._parquet = _is_parquet(self.path)
        self._columns = self._header()
        self._chunks = self._read_parquet() if self._parquet else self._read_csv()

    # -- the EventSource contract -----------------------------------------------------

    def read(self, max_events: int, block_ms: int) -> EventBatch | None:
        """Up to ``max_events`` events from one chunk of the file; empty while pacing
        holds them back longer than ``block_ms``; None at the end of the file."""
        chunk = self._current()
        if chunk is None:
            return None
        stop = min(len(chunk.batch), self._at + max(1, max_events))
        if self.speed is not None:
            stop = self._paced(chunk.batch.ts[self._at:stop], block_ms) + self._at
            if stop == self._at:
                return EventBatch.empty()
        out = _slice(chunk.batch, self._at, stop)
        self._at = stop
        self._advance(chunk.end_row if stop == len(chunk.batch) else int(chunk.rows[stop - 1]) + 1)
        return out

    def position(self) -> dict[str, Any]:
        return {"file": str(self.path), "row": self._row}

    def commit(self, position: dict[str, Any]) -> None:
        return None  # a file needs no acknowledgement: resuming passes start_row

    def counts(self) -> Counter:
        n = self._malformed.count
        return Counter({"malformed": n} if n else {})

    @property
    def samples(self) -> list[str]:
        """The first malformed rows up to ``position()``, as ``file:line: reason``."""
        return self._malformed.shown

    def close(self) -> None:
        self._chunks.close()

    # -- reading ------------------------------------------------------------------------

    def _current(self) -> _Chunk | None:
        while self._chunk is None or self._at >= len(self._chunk.batch):
            if self._chunk is not None:
                self._advance(max(self._row, self._chunk.end_row))
            self._chunk, self._at = next(self._chunks, None), 0
            if self._chunk is None:
                return None
        return self._chunk

    def _advance(self, row: int) -> None:
        self._row = row
        self._malformed.passed(row)

    def _paced(self, ts: np.ndarray, block_ms: int) -> int:
        """How many of ``ts`` (in file order) may go out now; sleeps up to ``block_ms``
        for the first one if it is not due yet."""
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, int(ts[0]))
        start, first = self._clock
        scale = 1000.0 * self.speed  # event ms per wall second
        wait = (int(ts[0]) - first) / scale - (now - start)
        if wait > 0:
            if wait * 1000 > block_ms:
                time.sleep(max(0, block_ms) / 1000)
                return 0
            time.sleep(wait)
            now = time.monotonic()
        over = ts > first + (now - start) * scale
        return int(np.argmax(over)) if over.any() else len(ts)

    def _header(self) -> dict[str, str]:
        """Our column name -> the file's (names are matched ignoring case and spaces)."""
        try:
            if self._parquet:
                import pyarrow.parquet as pq

                names = pq.ParquetFile(self.path).schema_arrow.names
            else:
                with pa.input_stream(str(self.path), compression="detect") as stream:
                    first = stream.read(1 << 16).decode("utf-8-sig", errors="replace")
                names = next(csv.reader([first.splitlines()[0] if first else ""]), [])
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path}: cannot read: {exc}") from exc
        found = {n.strip().lower(): n for n in names}
        for column in COLUMNS[:3]:
            if column not in found:
                raise InputError(f"{self.path}: no column {column!r} (the header must have "
                                 f"msisdn,cell,ts[,type]; found {','.join(names) or 'nothing'})")
        return {c: found[c] for c in COLUMNS if c in found}

    def _read_csv(self) -> Iterator[_Chunk]:
        import pyarrow.csv as pcsv

        invalid: list[int] = []  # data row index of every row with the wrong field count

        def on_invalid(row: Any) -> str:
            r = row.number - 2 if row.number is not None else (invalid[-1] + 1 if invalid else 0)
            invalid.append(r)
            if r >= self._start_row:
                fields = f"{row.actual_columns} fields, {row.expected_columns} expected"
                self._malformed.found_one(r, f"{self.path}:{r + 2}: {fields}")
            return "skip"

        # Binary columns: one byte that is not UTF-8 must cost its row, not the batch
        # (the reader's own string conversion would abort the whole file).
        wanted = list(self._columns.values())
        reader = self._arrow(lambda: pcsv.open_csv(
            str(self.path),
            read_options=pcsv.ReadOptions(use_threads=False,  # row numbers need one thread
                                          block_size=max(1 << 16, self._batch_rows * 48)),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid,
                                             ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(include_columns=wanted,
                                                column_types={c: pa.binary() for c in wanted},
                                                strings_can_be_null=False)))  # fmt: skip
        good = 0  # rows the reader returned so far
        while (batch := self._arrow(lambda: reader.read_next_batch(), stop=True)) is not None:
            i = good + np.arange(batch.num_rows, dtype=np.int64)
            skipped = np.asarray(invalid, dtype=np.int64)
            # valid row i comes after invalid row j when the j valid rows before it are <= i
            rows = i + np.searchsorted(skipped - np.arange(len(skipped)), i, side="right")
            good += batch.num_rows
            yield from self._chunk_of(batch, rows, blank_skip=True)
        if invalid and invalid[-1] + 1 > self._row:  # bad rows after the last good one
            yield _Chunk(EventBatch.empty(), np.empty(0, np.int64), invalid[-1] + 1)

    def _read_parquet(self) -> Iterator[_Chunk]:
        import pyarrow.parquet as pq

        reader = self._arrow(lambda: pq.ParquetFile(self.path))
        batches = reader.iter_batches(batch_size=self._batch_rows,
                                      columns=list(self._columns.values()))  # fmt: skip
        first = 0
        while (batch := self._arrow(lambda: next(batches, None))) is not None:
            rows = first + np.arange(batch.num_rows, dtype=np.int64)
            first += batch.num_rows
            yield from self._chunk_of(batch, rows, blank_skip=False)

    def _chunk_of(self, batch: pa.RecordBatch, rows: np.ndarray,
                  blank_skip: bool) -> Iterator[_Chunk]:  # fmt: skip
        end = int(rows[-1]) + 1 if len(rows) else self._row
        if end <= self._start_row:
            return
        keep = rows >= self._start_row
        cols = {c: batch.column(name) for c, name in self._columns.items()}
        try:
            checked = check_columns(cols, utc_offset_seconds=self._offset_s, blank_skip=blank_skip)
        except InputError as exc:
            raise InputError(f"{self.path}: {exc}") from None
        ok = checked.ok & keep
        bad = np.flatnonzero(~checked.ok & ~checked.blank & keep)
        shown = bad[:self._malformed.room()]
        where = [int(r) for r in rows[shown]]
        said = [f"{self.path}:{r + 2}" if not self._parquet else f"{self.path}:row {r + 1}"
                for r in where]  # fmt: skip
        self._malformed.found(rows[bad], [(r, f"{w}: {why}") for r, w, why in zip(
            where, said, sample_reasons(checked, shown), strict=True)])  # fmt: skip
        idx = np.flatnonzero(ok)
        yield _Chunk(_take(checked.batch, idx), rows[idx], end)

    def _arrow(self, call: Any, stop: bool = False) -> Any:
        """``call()`` with Arrow's errors as one line naming the file and where it stopped."""
        try:
            return call()
        except StopIteration:
            if stop:
                return None
            raise
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path}: unreadable after data row {self._row + 1}: "
                             f"{exc}") from exc  # fmt: skip


def _is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PAR1"
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


# ----------------------------------------------------------------------------- batches


def cell_array(cells: Any) -> pa.Array:
    """A batch's cells as an Arrow string array (they may come as a list)."""
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    if isinstance(cells, pa.Array):
        return cells if cells.type == pa.string() else pc.cast(cells, pa.string())
    return pa.array(list(cells), type=pa.string())


def _slice(b: EventBatch, start: int, stop: int) -> EventBatch:
    if start == 0 and stop == len(b):
        return b
    received = None if b.received_ms is None else b.received_ms[start:stop]
    return EventBatch(b.msisdn[start:stop], b.cell[start:stop], b.ts[start:stop],
                      b.kind[start:stop], received)  # fmt: skip


def _take(b: EventBatch, idx: np.ndarray) -> EventBatch:
    if len(idx) == len(b):
        return b
    received = None if b.received_ms is None else b.received_ms[idx]
    cells = cell_array(b.cell).take(pa.array(idx))
    return EventBatch(b.msisdn[idx], cells, b.ts[idx], b.kind[idx], received)


def concat_batches(parts: list[EventBatch]) -> EventBatch:
    """One batch of ``parts`` in order (a missing received_ms is -1 beside known ones)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return EventBatch.empty()
    if len(parts) == 1:
        return parts[0]
    received = None
    if any(p.received_ms is not None for p in parts):
        received = np.concatenate([p.received_ms if p.received_ms is not None
                                   else np.full(len(p), -1, np.int64) for p in parts])  # fmt: skip
    return EventBatch(np.concatenate([p.msisdn for p in parts]),
                      pa.concat_arrays([cell_array(p.cell) for p in parts]),
                      np.concatenate([p.ts for p in parts]),
                      np.concatenate([p.kind for p in parts]), received)  # fmt: skip


# ----------------------------------------------------------------------------- queue


class QueueSource:
    """Batches handed over in this process (a test, a bench, an embedding service).

    ``put`` from any thread; ``read`` returns what is queued, small batches merged up to
    ``max_events`` (a bigger one is split), and None once closed and drained. A batch
    without ``received_ms`` is stamped with the time it was put. Nothing survives the
    process: the position is only the number of events read."""

    def __init__(self, name: str = "queue") -> None:
        self.name = name
        self._queue: deque[EventBatch] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._read = 0

    def put(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        if batch.received_ms is None:
            now = time.time_ns() // 1_000_000
            batch = EventBatch(batch.msisdn, batch.cell, batch.ts, batch.kind,
                               np.full(len(batch), now, np.int64))  # fmt: skip
        with self._ready:
            if self._closed:
                raise InputError(f"{self.name}: the queue is closed; no more batches")
            self._queue.append(batch)
            self._ready.notify_all()

    def read(self, max_events: int, block_ms: int) -> EventBatch | None:
        with self._ready:
            if not self._queue and not self._closed and block_ms > 0:
                self._ready.wait_for(lambda: self._queue or self._closed, block_ms / 1000)
            if not self._queue:
                return None if self._closed else EventBatch.empty()
            parts, n = [], 0
            while self._queue and n < max(1, max_events):
                head = self._queue[0]
                take = min(len(head), max(1, max_events) - n)
                if take == len(head):
                    parts.append(self._queue.popleft())
                else:
                    parts.append(_slice(head, 0, take))
                    self._queue[0] = _slice(head, take, len(head))
                n += take
            self._read += n
        return concat_batches(parts)

    def position(self) -> dict[str, Any]:
        return {"queue": self.name, "events": self._read}

    def commit(self, position: dict[str, Any]) -> None:
        return None

    def counts(self) -> Counter:
        return Counter()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

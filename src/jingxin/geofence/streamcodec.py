"""How location events are laid out in Redis stream entries, both ways.

A *block* entry carries up to a few hundred events in one field ``b``: UTF-8 lines
``msisdn_digits,cell,ts_ms,kind\\n``, in the order they were published. One entry per event
(fields ``m``, ``c``, ``t``, ``k``) is the older layout another producer may still write;
both are read, and may be mixed in one read. Blocks exist because per-entry costs
(hiredis building nine objects per entry, redis-py's reply callbacks, our own walk) capped
a matcher process at ~42k events/s while the matcher itself does ~700k/s.

Decoding is vectorised: every block of one read is joined into one buffer and parsed by
Arrow's CSV reader at once. A bad line never costs its block: a line with the wrong
number of fields is skipped by the reader's handler, a value out of range by a mask, and
either way counted ``malformed`` with a sample ``<stream> <id>: line N: reason`` (N counts
the lines of that block from 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from jingxin.errors import InputError
from jingxin.geofence.types import EVENT_TYPES, EventBatch

BLOCK_EVENTS = 500  # events per block entry (the publisher's default)
MSISDN_RANGE = (8613000000000, 8619999999999)  # 86 + a mobile number 1[3-9]xxxxxxxxx
BLOCK_FIELD = "b"
_NAMES = ["m", "c", "t", "k"]
_TYPED = {"m": pa.int64(), "c": pa.string(), "t": pa.int64(), "k": pa.int8()}
_KIND_END = pa.array([f"{k}\n" for k in range(256)], pa.string())  # kind, then the line end
_SEPARATORS = r"[,\r\n]"  # a cell holding one would break its line
_SAMPLES = 10  # malformed samples kept per shape and read, at most (the source keeps fewer)


# ----------------------------------------------------------------------------- writing


class Lines:
    """Events as lines ``msisdn,cell,ts,kind\\n`` in one buffer, cut into blocks by index.
    The cells must have passed :func:`check_cells`."""

    def __init__(self, msisdn: np.ndarray, cells: pa.Array, ts: np.ndarray,
                 kind: np.ndarray) -> None:  # fmt: skip
        text = pc.binary_join_element_wise(pc.cast(pa.array(msisdn), pa.string()), cells,
                                           pc.cast(pa.array(ts), pa.string()),
                                           _KIND_END.take(pa.array(kind)), ",")  # fmt: skip
        _, offsets, data = text.buffers()
        self._starts = np.frombuffer(offsets, np.int32, len(text) + 1, text.offset * 4)
        self._data = memoryview(data)

    def blocks(self, start: int, stop: int, size: int) -> list[bytes]:
        """Events ``start..stop`` in blocks of ``size`` lines (the last one shorter)."""
        cuts = self._starts[list(range(start, stop, size)) + [stop]].tolist()
        return [bytes(self._data[a:b]) for a, b in pairwise(cuts)]


def check_cells(cells: pa.Array) -> None:
    """Refuse (InputError) a batch with a cell that a line cannot carry, naming it and its
    event's index in the batch."""
    if cells.null_count:
        at = pc.index(pc.is_null(cells), True).as_py()
        raise InputError(f"cell: event {at} has no cell; nothing was published")
    wrong = pc.match_substring_regex(cells, _SEPARATORS)
    if pc.any(wrong).as_py():
        at = pc.index(wrong, True).as_py()
        raise InputError(f"cell: {cells[at].as_py()!r} (event {at}) holds a comma or a line "
                         "break, which a block line cannot carry; nothing was published")


# ----------------------------------------------------------------------------- reading


@dataclass
class Decoded:
    """One read's events (entry order kept) and what was wrong with the rest."""

    batch: EventBatch
    lines: int = 0  # events seen: good and malformed
    malformed: int = 0
    trimmed: int = 0  # entries read while pending, trimmed away since (no fields left)
    samples: list[str] = field(default_factory=list)


@dataclass
class _Entries:
    """Entries of one shape, with their place in the read and their id's time."""

    values: list = field(default_factory=list)  # a block's bytes, or a one-event field list
    at: list[int] = field(default_factory=list)  # index of the entry in the read
    ms: list[int] = field(default_factory=list)
    names: list[tuple[str, Any]] = field(default_factory=list)  # (stream, entry id)

    def name(self, i: int) -> str:
        stream, entry_id = self.names[i]
        return f"{stream} {_text(entry_id)}"


def decode(parts: list[tuple[str, list, np.ndarray]], *, room: int) -> Decoded:
    """Raw XREADGROUP entries (``[id, [field, value, ...] or None]``) of each stream, with
    the ms of their ids, as one batch; ``room`` malformed samples at most."""
    blocks, singles, trimmed, n = _Entries(), _Entries(), 0, 0
    for stream, entries, ms in parts:
        for (entry_id, fields), entry_ms in zip(entries, ms.tolist(), strict=True):
            if not fields:
                trimmed += 1
                continue
            ours = blocks if len(fields) == 2 and _text(fields[0]) == BLOCK_FIELD else singles
            ours.values.append(fields[1] if ours is blocks else fields)
            ours.at.append(n)
            ours.ms.append(entry_ms)
            ours.names.append((stream, entry_id))
            n += 1
    found = [_blocks(blocks), _singles(singles)]
    samples = sorted(s for f in found for s in f.samples)[:room]
    batch, _ = _merged([f for f in found if len(f.batch)])
    return Decoded(batch, sum(f.lines for f in found), sum(f.malformed for f in found), trimmed,
                   [text for _, _, text in samples])  # fmt: skip


def entry_events(fields: Any) -> int:
    """How many events an entry holds without decoding it (for counting acked ones)."""
    if not fields:
        return 0
    if len(fields) == 2 and _text(fields[0]) == BLOCK_FIELD:
        value = fields[1] if isinstance(fields[1], bytes) else str(fields[1]).encode()
        return value.count(b"\n") + (not value.endswith(b"\n"))
    return 1


@dataclass
class _Found:
    batch: EventBatch
    at: np.ndarray  # the entry index of each event (its place in the read)
    lines: int = 0
    malformed: int = 0
    samples: list[tuple[int, int, str]] = field(default_factory=list)  # (entry, line, text)


def _merged(found: list[_Found]) -> tuple[EventBatch, np.ndarray | None]:
    """Both shapes as one batch in entry order (stable: lines keep their order)."""
    if not found:
        return EventBatch.empty(), None
    if len(found) == 1:
        return found[0].batch, found[0].at
    at = np.concatenate([f.at for f in found])
    order = np.argsort(at, kind="stable")
    b = [f.batch for f in found]
    return EventBatch(np.concatenate([x.msisdn for x in b])[order],
                      pa.concat_arrays([x.cell for x in b]).take(pa.array(order)),
                      np.concatenate([x.ts for x in b])[order],
                      np.concatenate([x.kind for x in b])[order],
                      np.concatenate([x.received_ms for x in b])[order]), at[order]  # fmt: skip


def _blocks(e: _Entries) -> _Found:
    if not e.values:
        return _Found(EventBatch.empty(), np.empty(0, np.int64))
    values = [v if isinstance(v, bytes) else str(v).encode() for v in e.values]
    values = [v if v.endswith(b"\n") else v + b"\n" for v in values]  # b"" is one empty line
    lines = np.array([v.count(b"\n") for v in values], np.int64)
    table, skipped = _parse(b"".join(values))
    if table.num_rows + len(skipped) != int(lines.sum()):
        return _one_by_one(e, values)  # a lone "\r" split a line: keep each block apart
    line_block = np.repeat(np.arange(len(values)), lines)
    kept = np.ones(len(line_block), bool)
    kept[[number - 1 for number, _ in skipped]] = False
    row_line = np.flatnonzero(kept)  # 0-based line of each parsed row
    cols, bad, reasons = _checked(table)
    first = (np.cumsum(lines) - lines).tolist()  # the first line of each block, 0-based
    said = [(number - 1, reason) for number, reason in skipped[:_SAMPLES]]
    said += [(int(row_line[r]), reasons(r)) for r in np.flatnonzero(bad)[:_SAMPLES]]
    samples = []
    for line, why in said:
        i = int(line_block[line])
        samples.append((e.at[i], line, f"{e.name(i)}: line {line - first[i] + 1}: {why}"))
    good = np.flatnonzero(~bad)
    block_of = line_block[row_line[good]]
    batch = _batch(cols, good, np.asarray(e.ms, np.int64)[block_of])
    return _Found(batch, np.asarray(e.at, np.int64)[block_of], int(lines.sum()),
                  len(skipped) + int(bad.sum()), samples)  # fmt: skip


def _one_by_one(e: _Entries, values: list[bytes]) -> _Found:
    """Each block parsed on its own: rows map to their block even when lines do not."""
    found = []
    for i, value in enumerate(values):
        one = _Entries([value], [e.at[i]], [e.ms[i]], [e.names[i]])
        table, skipped = _parse(value)
        if table.num_rows + len(skipped) == value.count(b"\n"):
            found.append(_blocks(one))
            continue
        cols, bad, _ = _checked(table)
        good = np.flatnonzero(~bad)
        batch = _batch(cols, good, np.full(len(good), e.ms[i], np.int64))
        found.append(_Found(batch, np.full(len(good), e.at[i], np.int64),
                            table.num_rows + len(skipped), len(skipped) + int(bad.sum()),
                            [(e.at[i], 0, f"{e.name(i)}: a line break inside a line")]))
    batch, at = _merged([f for f in found if len(f.batch)])
    return _Found(batch, at if at is not None else np.empty(0, np.int64),
                  sum(f.lines for f in found), sum(f.malformed for f in found),
                  [s for f in found for s in f.samples])  # fmt: skip


def _parse(buffer: bytes) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Lines parsed by Arrow's CSV reader (C++, one pass: what a hand loop over 5,000 lines
    per read cannot match in Python); typed first, as text when a value does not convert
    (the typed reader fails the whole buffer on one bad number). Skipped lines by number."""
    for types in (_TYPED, dict.fromkeys(_NAMES, pa.string())):
        skipped: list[tuple[int, str]] = []

        def handler(row: Any, skipped: list = skipped) -> str:
            skipped.append((row.number, f"{row.actual_columns} fields, not 4"))
            return "skip"

        try:
            table = pcsv.read_csv(
                pa.py_buffer(buffer),
                read_options=pcsv.ReadOptions(column_names=_NAMES, use_threads=False),
                parse_options=pcsv.ParseOptions(quote_char=False, ignore_empty_lines=False,
                                                invalid_row_handler=handler),
                convert_options=pcsv.ConvertOptions(column_types=types))  # fmt: skip
        except pa.ArrowInvalid:
            if types is _TYPED:
                continue
            raise
        # row numbers are known only to a single-threaded reader (use_threads=False)
        return table, [(n, why) for n, why in skipped if n is not None and n > 0]
    raise AssertionError("unreachable")


def _checked(table: pa.Table) -> tuple[dict[str, Any], np.ndarray, Any]:
    """Columns as numpy (cells Arrow), the bad rows, and the reason one row is bad."""
    m, bad_m = _integers(table["m"])
    t, bad_t = _integers(table["t"])
    k, bad_k = _integers(table["k"])
    cells, bad_c = _cells(table["c"])
    checks = {"msisdn missing or no mobile number": bad_m | (m < MSISDN_RANGE[0])
              | (m > MSISDN_RANGE[1]),
              "ts missing or not positive epoch ms": bad_t | (t <= 0),
              "kind missing or no event type": bad_k | (k < 0) | (k >= len(EVENT_TYPES)),
              "cell missing or empty": bad_c}  # fmt: skip
    bad = np.logical_or.reduce(list(checks.values()))

    def reason(row: int) -> str:
        return next(name for name, mask in checks.items() if mask[row])

    return {"m": m, "c": cells, "t": t, "k": k}, bad, reason


def _batch(cols: dict[str, Any], good: np.ndarray, received: np.ndarray) -> EventBatch:
    if len(good) == len(cols["m"]):
        return EventBatch(cols["m"], cols["c"], cols["t"], cols["k"].astype(np.uint8), received)
    return EventBatch(cols["m"][good], cols["c"].take(pa.array(good)), cols["t"][good],
                      cols["k"][good].astype(np.uint8), received)  # fmt: skip


def _singles(e: _Entries) -> _Found:
    """One-event entries (fields m, c, t, k), column by column."""
    if not e.values:
        return _Found(EventBatch.empty(), np.empty(0, np.int64))
    fields = [dict(zip(f[0::2], f[1::2], strict=False)) for f in e.values]
    key = (lambda f: f.encode()) if isinstance(e.values[0][0], bytes) else (lambda f: f)
    table = {name: _strings([f.get(key(name)) for f in fields]) for name in _NAMES}
    cols, bad, _ = _checked(table)
    wrong = np.flatnonzero(bad)
    samples = [(e.at[i], 0, f"{e.name(i)}: fields m, c, t, k missing or out of range")
               for i in wrong[:_SAMPLES]]  # fmt: skip
    good = np.flatnonzero(~bad)
    batch = _batch(cols, good, np.asarray(e.ms, np.int64)[good])
    return _Found(batch, np.asarray(e.at, np.int64)[good], len(fields), len(wrong), samples)


# ----------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _strings(values: list) -> pa.Array:
    """Redis values (bytes, str or None) as an Arrow string array; undecodable -> null."""
    first = next((v for v in values if v is not None), None)
    kind = pa.binary() if isinstance(first, bytes) else pa.string()
    try:
        return pc.cast(pa.array(values, kind), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # rare: find the bad values one by one
        return pa.array([_decoded(v) for v in values], pa.string())


def _decoded(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode() if isinstance(value, bytes) else None
    except UnicodeDecodeError:
        return None


def _integers(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """An integer column (parsed, or text to check) as int64; missing or no number -> bad
    (value -1)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type):
        values = pc.fill_null(column, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return values, pc.is_null(column).to_numpy(zero_copy_only=False)
    ok = pc.fill_null(pc.match_substring_regex(column, r"^-?\d{1,18}$"), False)
    out = pc.cast(pc.if_else(ok, column, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
    return out, ~ok.to_numpy(zero_copy_only=False)


def _cells(column: Any) -> tuple[pa.Array, np.ndarray]:
    """Cell ids as strings; empty, missing or undecodable ones marked bad."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    cells = pc.fill_null(pc.utf8_trim_whitespace(column), "")
    return cells, pc.equal(pc.utf8_length(cells), 0).to_numpy(zero_copy_only=False)


def id_parts(ids: list) -> tuple[np.ndarray, np.ndarray]:
    """Entry ids ``<ms>-<seq>`` as two int64 arrays, vectorised."""
    parts = pc.split_pattern(_strings(ids), "-", max_splits=1)
    flat = pc.cast(parts.flatten(), pa.int64()).to_numpy(zero_copy_only=False)
    return flat[0::2], flat[1::2]  # Redis ids are always "<ms>-<seq>"

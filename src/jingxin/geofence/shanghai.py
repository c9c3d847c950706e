"""The realism check: the matcher on real Shanghai Telecom data it did not generate.

Two public files (``../shared/data``, see its README): ``shanghai_base_stations.csv``
(3,042 stations: latitude, longitude, id) and ``shanghai_sessions_0614.tsv`` (one day,
2014-06-14, of per-user sessions at a station: start ``h.mm``, end ``h.mm``, latitude,
longitude, user md5; no header; a session whose end is before its start crosses
midnight). Stations become cells ``SH<id>``; each session becomes an event at its start
and an update every 15 minutes while it lasts (a phone in a long session is still
seen, as periodic updates and handovers would show it); a session is joined to its
station by exact coordinates, and one with no station (the file has rows at 0, 0) is
counted, not placed. Each user gets a stable fake number from their md5.

Fences are drawn around six real places with radii that take in a handful of stations
(:data:`PLACES`); :func:`replay` runs the day through the :class:`Matcher` with no dwell
and with a 10-minute dwell and counts entries per fence per local hour.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import InputError
from jingxin.geofence.directory import CellIndex, Directory
from jingxin.geofence.types import EVENT_TYPES, EventBatch, Fence

STATIONS = "shanghai_base_stations.csv"
SESSIONS = "shanghai_sessions_0614.tsv"
DAY = dt.date(2014, 6, 14)
UTC_OFFSET = 8 * 3600
UPDATE_MINUTES = 15
SAMPLES = 5  # bad lines quoted per problem
_TIME = r"^([0-9]{1,2})(\.([0-9]{1,2}))?$"  # h, h.m or h.mm (a float that lost its 0)
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_MD5 = r"^[0-9a-fA-F]{32}$"


@dataclass(frozen=True)
class Place:
    code: str
    name: str
    scenario: str
    lat: float
    lon: float
    radius_m: float


# Radii checked against the station table: each takes in a handful of stations. The
# Hongqiao hub's railway station and airport T2 are 700 m apart and share stations.
PLACES: tuple[Place, ...] = (
    Place("sh-hongqiao-rail", "虹桥火车站", "railway_station", 31.1945, 121.3203, 1500),
    Place("sh-pudong-t2", "浦东机场T2", "airport_departure", 31.1512, 121.8034, 2000),
    Place("sh-hongqiao-t2", "虹桥机场T2", "airport_departure", 31.1967, 121.3270, 2100),
    Place("sh-xujiahui", "徐家汇商圈", "mall", 31.1955, 121.4377, 530),
    Place("sh-peoples-square", "人民广场/南京路", "mall", 31.2336, 121.4752, 400),
    Place("sh-railway-station", "上海火车站", "railway_station", 31.2497, 121.4556, 480),
)  # fmt: skip


@dataclass
class SessionEvents:
    """The sessions file as events, with what could not be read."""

    batch: EventBatch  # sorted by ts
    users: int
    sessions: int  # placed at a station
    crossing_midnight: int
    counts: Counter = field(default_factory=Counter)  # malformed, blank, no_station
    samples: list[str] = field(default_factory=list)  # "file:line: problem"


def _read_text(path: Path, names: list[str], *, delimiter: str, header: bool,
               counts: Counter, samples: list[str]) -> tuple[pa.Table, np.ndarray]:  # fmt: skip
    """Every column as text, and each kept row's line number; rows with the wrong number
    of fields are counted (``malformed``, ``blank``) and skipped."""
    import pyarrow.csv as pacsv

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    skipped: list[int] = []

    def invalid(row: Any) -> str:
        line = row.number + (1 if header else 0)
        skipped.append(line)
        kind = "blank" if not (row.text or "").strip() else "malformed"
        counts[kind] += 1
        if kind == "malformed" and len(samples) < SAMPLES:
            samples.append(f"{path}:{line}: {row.actual_columns} fields, expected {row.expected_columns}")
        return "skip"

    read = pacsv.ReadOptions(column_names=None if header else names, use_threads=False)
    parse = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid,
                               ignore_empty_lines=False)  # fmt: skip
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse,
                               convert_options=pacsv.ConvertOptions(
                                   column_types=dict.fromkeys(names, pa.string())))  # fmt: skip
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: not a readable {'CSV' if delimiter == ',' else 'TSV'} "
                         f"file ({exc})") from exc  # fmt: skip
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InputError(f"{path}: line 1: no column {', '.join(missing)} "
                         f"(found {', '.join(table.column_names)})")  # fmt: skip
    first = 2 if header else 1
    lines = np.setdiff1d(np.arange(first, first + table.num_rows + len(skipped)), skipped)
    return table.select(names), lines


def _flag(bad: np.ndarray, lines: np.ndarray, path: Path, problem: str, counts: Counter,
          samples: list[str]) -> None:  # fmt: skip
    if bad.any():
        counts["malformed"] += int(bad.sum())
        for line in lines[bad][: max(0, SAMPLES - len(samples))]:
            samples.append(f"{path}:{line}: {problem}")


def _matches(column: pa.ChunkedArray, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(column, pattern), False).to_numpy(
        zero_copy_only=False)


def _coordinate_key(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Exact coordinates (6 decimals, as both files write them) as one int64."""
    return np.round(lat * 1e6).astype(np.int64) * 1_000_000_000 + np.round(lon * 1e6).astype(np.int64)


def cells_from_stations(path: Path) -> CellIndex:
    """The stations as a cell index: ids ``SH<id>``, with ``lat``/``lon``. A row whose
    id or coordinates are not readable is an InputError naming its line."""
    path = Path(path)
    counts: Counter = Counter()
    samples: list[str] = []
    table, lines = _read_text(path, ["latitude", "longitude", "id"], delimiter=",", header=True,
                              counts=counts, samples=samples)  # fmt: skip
    for name, pattern in (("latitude", _NUMBER), ("longitude", _NUMBER), ("id", r"^\S+$")):
        _flag(~_matches(table[name], pattern), lines, path, f"{name} is not readable",
              counts, samples)  # fmt: skip
    if counts["malformed"]:
        raise InputError(f"{path}: {counts['malformed']} unreadable station row(s): "
                         + "; ".join(samples))  # fmt: skip
    ids = pc.binary_join_element_wise("SH", table["id"], "").to_pylist()
    cells = CellIndex.from_ids(ids, source=str(path))
    cells.lat = pc.cast(table["latitude"], pa.float64()).to_numpy()
    cells.lon = pc.cast(table["longitude"], pa.float64()).to_numpy()
    return cells


def fake_msisdn(md5: np.ndarray) -> np.ndarray:
    """A stable number per user md5: ``+8614`` and nine digits, the md5 modulo 10^9. A
    clash (rare: thousands of users in 10^9 numbers) moves the later md5, in md5 order, to
    the next free number: the same file always gives the same numbers, in any row order."""
    raw = np.frombuffer(bytes.fromhex("".join(md5)), dtype=">u8").reshape(-1, 2).astype(np.uint64)
    m = np.uint64(1_000_000_000)
    value = ((raw[:, 0] % m) * np.uint64(2**64 % 10**9) + raw[:, 1] % m) % m
    order = np.argsort(md5, kind="stable")
    value = value[order].astype(np.int64)
    while True:  # as many rounds as the longest run of clashes: one, practically
        by_value = np.argsort(value, kind="stable")  # md5 order among equal values
        clash = np.zeros(len(value), bool)
        clash[by_value[1:]] = value[by_value[1:]] == value[by_value[:-1]]
        if not clash.any():
            break
        value[clash] = (value[clash] + 1) % 1_000_000_000
    out = np.empty_like(value)
    out[order] = value
    return 8_614_000_000_000 + out


def _minutes(column: pa.ChunkedArray) -> np.ndarray:
    """``h.mm`` (already matched by ``_TIME``) -> minutes of the day, -1 past 23:59.
    ``h.m`` is h:m0: the file was written from floats, which drop a trailing zero (4.1
    is 04:10)."""
    parts = pc.extract_regex(column, r"^(?P<h>[0-9]{1,2})\.?(?P<m>[0-9]{0,2})$")
    hours = pc.cast(pc.struct_field(parts, [0]), pa.int64()).to_numpy(zero_copy_only=False)
    text = pc.fill_null(pc.struct_field(parts, [1]), "")
    digits = pc.utf8_length(text).to_numpy(zero_copy_only=False)
    value = pc.cast(pc.if_else(pc.equal(text, ""), "0", text), pa.int64()).to_numpy(
        zero_copy_only=False)
    minutes = np.where(digits == 1, value * 10, value)
    return np.where((hours < 24) & (minutes < 60), hours * 60 + minutes, -1)


def events_from_sessions(path: Path, cells: CellIndex, *, day: dt.date = DAY,
                         update_minutes: int = UPDATE_MINUTES) -> SessionEvents:  # fmt: skip
    """The sessions file as one batch of events on ``day`` (local): ``data`` at each
    session's start, ``update`` every ``update_minutes`` while it lasts (past midnight for
    a session that crosses it). Unreadable rows and rows at no station are counted."""
    path = Path(path)
    counts: Counter = Counter()
    samples: list[str] = []
    names = ["start", "end", "lat", "lon", "user"]
    table, lines = _read_text(path, names, delimiter="\t", header=False, counts=counts,
                              samples=samples)  # fmt: skip
    ok = np.ones(table.num_rows, bool)
    for name, pattern in (("start", _TIME), ("end", _TIME), ("lat", _NUMBER),
                          ("lon", _NUMBER), ("user", _MD5)):  # fmt: skip
        bad = ok & ~_matches(table[name], pattern)
        _flag(bad, lines, path, f"{name} {'is not h.mm' if name in ('start', 'end') else 'is not readable'}",
              counts, samples)  # fmt: skip
        ok &= ~bad
    table, lines = table.filter(pa.array(ok)), lines[ok]
    start, end = _minutes(table["start"]), _minutes(table["end"])
    late = (start < 0) | (end < 0)
    _flag(late, lines, path, "a time past 23.59", counts, samples)
    table, start, end = table.filter(pa.array(~late)), start[~late], end[~late]
    lat = pc.cast(table["lat"], pa.float64()).to_numpy()
    lon = pc.cast(table["lon"], pa.float64()).to_numpy()
    cell = _stations(cells, lat, lon)
    counts["no_station"] += int((cell < 0).sum())
    placed = cell >= 0
    start, end, cell = start[placed], end[placed], cell[placed]
    users, user = np.unique(table["user"].filter(pa.array(placed)).to_numpy(zero_copy_only=False),
                            return_inverse=True)  # fmt: skip
    crossing = end < start
    end = np.where(crossing, end + 24 * 60, end)
    batch = _expand(start, end, cell, fake_msisdn(users)[user], cells, day, update_minutes)
    return SessionEvents(batch=batch, users=len(users), sessions=len(start),
                         crossing_midnight=int(crossing.sum()), counts=counts,
                         samples=samples)  # fmt: skip


def _stations(cells: CellIndex, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The cell position of each coordinate pair (-1: no station there)."""
    keys = _coordinate_key(np.asarray(cells.lat), np.asarray(cells.lon))
    order = np.argsort(keys, kind="stable")  # the first station wins a shared position
    sorted_keys = keys[order]
    want = _coordinate_key(lat, lon)
    at = np.minimum(np.searchsorted(sorted_keys, want), len(keys) - 1)
    return np.where(sorted_keys[at] == want, order[at], -1)


def _expand(start: np.ndarray, end: np.ndarray, cell: np.ndarray, msisdn: np.ndarray,
            cells: CellIndex, day: dt.date, update_minutes: int) -> EventBatch:  # fmt: skip
    count = 1 + np.maximum(end - start - 1, 0) // update_minutes
    row = np.repeat(np.arange(len(start)), count)
    j = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    minute = start[row] + j * update_minutes
    midnight = (day - dt.date(1970, 1, 1)).days * 86_400 - UTC_OFFSET
    ts = (midnight + minute * 60) * 1000
    number = msisdn[row]
    order = np.lexsort((number, ts))
    kind = np.where(j == 0, EVENT_TYPES.index("data"), EVENT_TYPES.index("update"))
    ids = pa.array(cells.ids)
    return EventBatch(msisdn=number[order], cell=ids.take(pa.array(cell[row][order])),
                      ts=ts[order], kind=kind[order].astype(np.uint8))  # fmt: skip


# -- fences and the replay ------------------------------------------------------------


def place_fences(cells: CellIndex, *, dwell_seconds: int = 0,
                 places: tuple[Place, ...] = PLACES) -> list[Fence]:  # fmt: skip
    """A fence per place, its stations those within the radius. Every stay counts (a cap
    no one reaches, residents repeat): the replay counts entries, not offers."""
    from jingxin.geofence.fences import cells_within

    fences = []
    for p in places:
        ids = cells_within(cells, p.lat, p.lon, p.radius_m)
        if not ids:
            raise InputError(f"fence {p.code}: no station within {p.radius_m:.0f} m of "
                             f"({p.lat}, {p.lon})")  # fmt: skip
        fences.append(Fence(code=p.code, name=p.name, scenario=p.scenario, cells=tuple(ids),
                            template=f"fence.{p.scenario}", dwell_seconds=dwell_seconds,
                            cap_per_day=200, residents="repeat", centre=(p.lat, p.lon),
                            radius_m=p.radius_m))  # fmt: skip
    return fences


@dataclass
class Replay:
    """Entries (offers the fence would ask for, every stay counted) per fence and local
    hour: ``hourly[f, h]``, hour 0 = midnight starting ``day``, 24.. = the day after."""

    dwell_seconds: int
    fences: list[Fence]
    hourly: np.ndarray
    subscribers: np.ndarray  # distinct per fence
    counts: Counter
    seconds: float

    def by_hour(self, fence: int) -> dict[str, int]:
        return {f"{h:02d}": int(n) for h, n in enumerate(self.hourly[fence]) if n}


def replay(batch: EventBatch, cells: CellIndex, *, dwell_seconds: int, day: dt.date = DAY,
           places: tuple[Place, ...] = PLACES, batch_events: int = 2_000) -> Replay:
    """Run the events through a fresh Matcher in slices of ``batch_events`` (sweeping at
    the watermark after each, as the runner does) and count the triggers."""
    import time

    from jingxin.geofence.compiled import CompiledFences
    from jingxin.geofence.matcher import Matcher

    fences = place_fences(cells, dwell_seconds=dwell_seconds, places=places)
    numbers = np.unique(batch.msisdn)
    directory = Directory.from_arrays(numbers, np.arange(len(numbers)))
    matcher = Matcher(CompiledFences.build(fences, cells), directory, cells,
                      utc_offset_seconds=UTC_OFFSET)  # fmt: skip
    counts: Counter = Counter()
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    started = time.perf_counter()
    for lo in range(0, len(batch), batch_events):
        part = _slice(batch, lo, lo + batch_events)
        for result in (matcher.process(part), matcher.sweep(matcher.watermark_ms)):
            counts.update(result.counts)
            found.append((result.triggers.fence, result.triggers.sub, result.triggers.at_ms))
    seconds = time.perf_counter() - started
    fence = np.concatenate([f for f, _, _ in found]).astype(np.int64)
    sub = np.concatenate([s for _, s, _ in found]).astype(np.int64)
    at_ms = np.concatenate([a for _, _, a in found])
    midnight = (day - dt.date(1970, 1, 1)).days * 86_400 - UTC_OFFSET
    hour = np.clip((at_ms // 1000 - midnight) // 3600, 0, 47)
    hourly = np.zeros((len(fences), 48), np.int64)
    np.add.at(hourly, (fence, hour), 1)
    pairs = np.unique(fence * (len(numbers) + 1) + sub)
    distinct = np.bincount(pairs // (len(numbers) + 1), minlength=len(fences))
    return Replay(dwell_seconds=dwell_seconds, fences=fences, hourly=hourly,
                  subscribers=distinct, counts=counts, seconds=seconds)  # fmt: skip


def _slice(batch: EventBatch, lo: int, hi: int) -> EventBatch:
    cell = batch.cell[lo:hi] if not isinstance(batch.cell, pa.Array) else batch.cell.slice(lo, hi - lo)
    return replace(batch, msisdn=batch.msisdn[lo:hi], cell=cell, ts=batch.ts[lo:hi],
                   kind=batch.kind[lo:hi],
                   received_ms=None if batch.received_ms is None else batch.received_ms[lo:hi])

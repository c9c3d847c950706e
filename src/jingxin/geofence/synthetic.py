"""A synthetic morning of location events (06:00-11:00 local) for the subscribers of a
synthetic warehouse (``jingxin synth``): the feed a geofence demo or test replays.

Everyone starts at a home cell (the resident cell of the ``features`` table when it has
one, else a residential cell of their billing district) and has a work cell (likewise,
or a business-like cell drawn near home or anywhere). Commutes, mall visits and a share
(``airport_share``) of airport trips, departures (some then abroad, ``ROAM-<country>``,
like the synthetic mobility) and arrivals, are drawn as stays by
:mod:`jingxin.geofence.itineraries`; here the stays become events, whole seconds, sorted
by time, and a CSV or Parquet file.

Everything is drawn per subscriber with numpy from one seed: the same warehouse, day and
seed give the same table. No Python object per subscriber or event.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from jingxin.data.synth.cells import KM_PER_DEG_LAT, KM_PER_DEG_LON, Group
from jingxin.data.synth.mobility import COUNTRIES
from jingxin.errors import InputError
from jingxin.geofence.itineraries import (
    END,
    START,
    MorningShares,
    Segments,
    World,
    plan,
)
from jingxin.geofence.types import EVENT_TYPES

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse

UTC_OFFSET = 8 * 3600  # the synthetic operator is in Shanghai
PERIODIC = np.array([EVENT_TYPES.index(k) for k in ("update", "data", "call", "sms")])
PERIODIC_P = np.array([0.50, 0.35, 0.10, 0.05])
HOME_KINDS = ("residential", "suburban")
WORK_KINDS = ("business", "campus", "hospital", "mall", "hall", "transport")
AIRPORT_KM = 3.0  # airport cells this close to the first one are the same airport


def morning(warehouse: Warehouse, *, day: dt.date, seed: int = 42, subscribers: int | None = None,
            airport_share: float = 0.02, shares: MorningShares | None = None) -> pa.Table:
    """The events of the morning of ``day`` for the warehouse's subscribers (at most
    ``subscribers`` of them, a seeded sample): ``msisdn`` ("+86..."), ``cell``, ``ts``
    (timestamp, +08:00), ``type`` (EVENT_TYPES), sorted by time."""
    if not 0.0 <= airport_share <= 1.0:
        raise InputError(f"--airport-share must be between 0 and 1, got {airport_share}")
    shares = replace(shares or MorningShares(), airport=airport_share)
    rng = np.random.default_rng([seed, day.toordinal()])
    world = read_world(warehouse, rng=rng, subscribers=subscribers)
    segs = plan(world, rng=rng, shares=shares, weekday=day.weekday() < 5)
    return events_table(world, segs, rng=rng, day=day)


def read_world(warehouse: Warehouse, *, rng: np.random.Generator,
               subscribers: int | None) -> World:  # fmt: skip
    """Cells, subscribers (not churned) and their home and work cells."""
    import pyarrow.compute as pc

    cells = warehouse.table("cells").select("cell_id", "lat", "lon", "district", "kind")
    cells = cells.order_by("cell_id").to_pyarrow()
    if cells.num_rows == 0:
        raise InputError("warehouse table 'cells' is empty: no cell to place anyone in")
    subs = warehouse.table("subscribers")
    subs = subs.filter(subs.status != "churned").select("subscriber_id", "msisdn", "region")
    subs = subs.order_by("subscriber_id").to_pyarrow()
    if subscribers is not None and subscribers < subs.num_rows:
        subs = subs.take(np.sort(rng.choice(subs.num_rows, subscribers, replace=False)))
    names, codes = np.unique(np.concatenate([cells["district"].to_numpy(zero_copy_only=False),
                                             subs["region"].to_numpy(zero_copy_only=False)]),
                             return_inverse=True)  # fmt: skip
    district, region = codes[:cells.num_rows], codes[cells.num_rows:]
    lat, lon = cells["lat"].to_numpy(), cells["lon"].to_numpy()
    kind = cells["kind"].to_numpy(zero_copy_only=False)
    home_f, work_f = _resident_cells(warehouse, subs["subscriber_id"].to_numpy(), cells["cell_id"])
    homes = _group(np.isin(kind, HOME_KINDS), district, len(names))
    works = _group(np.isin(kind, WORK_KINDS), district, len(names))
    home = np.where(home_f >= 0, home_f, homes.pick(rng, region))
    elsewhere = np.where(rng.random(len(region)) < 0.5, region,
                         rng.integers(0, len(names), len(region)))  # fmt: skip
    drawn = np.where(rng.random(len(region)) < 0.7, works.pick(rng, elsewhere), home)
    work = np.where(work_f >= 0, work_f, drawn)
    xy = np.column_stack([lon * KM_PER_DEG_LON, lat * KM_PER_DEG_LAT])
    return World(cell_ids=pc.cast(cells["cell_id"], pa.string()).to_pylist(), xy=xy, kind=kind,
                 district=district, msisdn=subs["msisdn"].combine_chunks(), region=region,
                 home=home, work=work)  # fmt: skip


def _resident_cells(warehouse: Warehouse, ids: np.ndarray,
                    cell_ids: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Home and work cell indices from the latest ``features`` build (-1: none)."""
    import pyarrow.compute as pc

    none = np.full(len(ids), -1, np.int64)
    f = warehouse.table("features") if warehouse.has_table("features") else None
    f = None if f is None else f.filter(f.as_of == f.as_of.max()).to_pyarrow()
    if f is None or f.num_rows == 0:
        return none, none.copy()
    fid = f["subscriber_id"].to_numpy()
    order = np.argsort(fid)
    pos = np.minimum(np.searchsorted(fid[order], ids), len(fid) - 1)
    found = fid[order][pos] == ids
    home, work = (np.where(found, pc.fill_null(pc.index_in(f[name], value_set=cell_ids), -1)
                           .to_numpy()[order][pos], -1) for name in ("home_cell", "work_cell"))
    return home, work


def _group(mask: np.ndarray, district: np.ndarray, districts: int) -> Group:
    cells = np.flatnonzero(mask)
    if len(cells) == 0:  # a warehouse without such cells: any cell will do
        cells = np.arange(len(district))
    cells = cells[np.argsort(district[cells], kind="stable")]
    count = np.bincount(district[cells], minlength=districts)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Group(cells=cells, start=start, count=count)


def events_table(world: World, segs: Segments, *, rng: np.random.Generator,
                 day: dt.date) -> pa.Table:  # fmt: skip
    """Expand the stays into events (an event at each start, then one about every period,
    jittered), keep the morning's, and sort them by time."""
    sub, cell, start, end, period, first, hop = segs.columns()
    end = np.minimum(end, END)
    keep = (start < end) & (start >= START)
    sub, cell, start, end, period, first, hop = (c[keep] for c in
                                                 (sub, cell, start, end, period, first, hop))
    count = 1 + (end - start - 1) // period
    seg = np.repeat(np.arange(len(sub)), count)
    j = np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count)
    jitter = (rng.random(len(seg)) * period[seg] * 0.5).astype(np.int64)
    t = np.minimum(start[seg] + j * period[seg] + np.where(j > 0, jitter, 0), end[seg] - 1)
    kind = np.where(j == 0, first[seg], rng.choice(PERIODIC, len(seg), p=PERIODIC_P))
    where = _hop_airport_cells(world, cell[seg], hop[seg] & (j > 0), rng)
    who = sub[seg]
    order = np.lexsort((who, t))
    midnight = (day - dt.date(1970, 1, 1)).days * 86_400 - UTC_OFFSET
    labels = pa.array(world.cell_ids + [f"ROAM-{c}" for c in COUNTRIES])
    return pa.table({
        "msisdn": world.msisdn.take(pa.array(who[order])),
        "cell": labels.take(pa.array(where[order])),
        "ts": pa.array((midnight + t[order]) * 1000, pa.timestamp("ms", tz="+08:00")),
        "type": pa.array(EVENT_TYPES).take(pa.array(kind[order])),
    })  # fmt: skip


def _hop_airport_cells(world: World, cell: np.ndarray, hop: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """At an airport a phone moves between the airport's cells: each update marked
    ``hop`` is in a random airport cell within AIRPORT_KM of the stay's cell."""
    airports = np.flatnonzero(world.kind == "airport")
    idx = np.flatnonzero(hop)
    if len(idx) == 0 or len(airports) == 0:
        return cell
    d = np.linalg.norm(world.xy[airports][:, None, :] - world.xy[airports][None, :, :], axis=2)
    near = d <= AIRPORT_KM  # a few dozen airport cells: the full matrix is small
    indptr = np.concatenate([[0], np.cumsum(near.sum(axis=1))])
    members = airports[np.nonzero(near)[1]]
    row = np.searchsorted(airports, cell[idx])
    size = indptr[row + 1] - indptr[row]
    out = cell.copy()
    out[idx] = members[indptr[row] + (rng.random(len(idx)) * size).astype(np.int64)]
    return out


def write_events(table: pa.Table, path: Path) -> Path:
    """Write the events as CSV (header ``msisdn,cell,ts,type``, ts ISO-8601 with the
    +08:00 offset) or Parquet, by the file's suffix; atomically (a temporary file renamed
    into place: a reader never sees half a file)."""
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"{path}: the events file must end in .csv or .parquet")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            ms = table["ts"].combine_chunks().cast(pa.int64()).to_numpy()
            text = table.set_column(table.schema.get_field_index("ts"), "ts", iso_local(ms))
            text = text.select(["msisdn", "cell", "ts", "type"])
            _write_csv(text, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_csv(table: pa.Table, path: Path) -> None:
    """A plain ``msisdn,cell,ts,type`` header, and quotes only if a value needs them
    (Arrow quotes the header always, and every string in its "needed" style)."""
    import pyarrow.csv as pacsv

    for style in ("none", "needed"):  # "none" refuses a value with a comma or a quote
        with pa.OSFile(str(path), "wb") as sink:
            sink.write(",".join(table.column_names).encode() + b"\n")
            try:
                pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(
                    include_header=False, quoting_style=style))
                return
            except pa.ArrowInvalid:
                continue


def iso_local(ms: np.ndarray, offset_seconds: int = UTC_OFFSET) -> pa.Array:
    """Epoch ms as ``YYYY-MM-DDTHH:MM:SS+08:00`` in the zone of ``offset_seconds``.

    Built as fixed-width bytes: numpy's datetime_as_string and Arrow's strftime take
    about a microsecond per value (2 s for a morning of 100k subscribers), this a tenth."""
    local = np.asarray(ms, np.int64) // 1000 + offset_seconds
    days, sec = np.divmod(local, 86_400)
    uniq, inv = np.unique(days, return_inverse=True)
    dates = b"".join((dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).isoformat().encode()
                     for d in uniq)  # fmt: skip
    sign, off = ("+" if offset_seconds >= 0 else "-"), abs(offset_seconds) // 60
    zone = np.frombuffer(f"{sign}{off // 60:02d}:{off % 60:02d}".encode(), np.uint8)
    buf = np.empty((len(local), 25), np.uint8)
    buf[:, :10] = np.frombuffer(dates, np.uint8).reshape(-1, 10)[inv]
    buf[:, 10], buf[:, 13], buf[:, 16] = ord("T"), ord(":"), ord(":")
    for col, value in ((11, sec // 3600), (14, sec // 60 % 60), (17, sec % 60)):
        buf[:, col], buf[:, col + 1] = 48 + value // 10, 48 + value % 10
    buf[:, 19:] = zone
    offsets = np.arange(len(local) + 1, dtype=np.int32) * 25
    return pa.StringArray.from_buffers(len(local), pa.py_buffer(offsets),
                                       pa.py_buffer(buf.tobytes()))  # fmt: skip

"""The cell grid: base-station cells over Shanghai's 6,340 km², denser downtown.

Ordinary cells are spread around each district's centre (a Gaussian whose width grows
with the district's area), with counts weighted by population, and get a land use drawn
from the district's ring (core, inner suburbs, outer districts). Landmark sites (the two
airports, railway stations, scenic spots, Lujiazui, Zhangjiang) get their own clusters.
Given a file of real base-station positions (``--stations``: CSV with latitude and
longitude columns, e.g. the Shanghai Telecom set) ordinary cells are placed at real
stations instead, a sector's offset away, and take the district of the nearest centre.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from jingxin.data.synth import districts as geo
from jingxin.data.synth.columns import categorical, digit_strings
from jingxin.data.warehouse.schema import CELLS
from jingxin.errors import InputError

BBOX = (30.68, 31.88, 120.85, 122.00)  # lat min/max, lon min/max of Shanghai
KM_PER_DEG_LAT, KM_PER_DEG_LON = 111.0, 95.0


@dataclass(frozen=True)
class Group:
    """Cell indices grouped by district: ``cells[start[d]:start[d] + count[d]]``."""

    cells: np.ndarray
    start: np.ndarray
    count: np.ndarray

    def pick(self, rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
        """One cell of the group in each requested district (districts without such a
        cell borrow from the whole group)."""
        count = self.count[district]
        offset = (rng.random(len(district)) * np.maximum(count, 1)).astype(np.int64)
        pos = np.where(count > 0, self.start[district] + offset,
                       (rng.random(len(district)) * len(self.cells)).astype(np.int64))
        return self.cells[pos]


@dataclass(frozen=True)
class CellGrid:
    ids: pa.Array
    lat: np.ndarray
    lon: np.ndarray
    district: np.ndarray
    kind: np.ndarray
    homes: Group
    works: Group
    airports: np.ndarray

    def __len__(self) -> int:
        return len(self.lat)

    def table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [self.ids, pa.array(self.lat.round(6)), pa.array(self.lon.round(6)),
             categorical(geo.NAMES, self.district), categorical(geo.KINDS, self.kind)],
            schema=CELLS.schema)


def read_stations(path: Path) -> np.ndarray:
    """(lat, lon) rows of a stations CSV, outliers outside Shanghai dropped."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read stations file {path}: {exc}") from exc
    if not rows or not {"latitude", "longitude"} <= set(rows[0]):
        raise InputError(f"{path}: stations CSV needs 'latitude' and 'longitude' columns")
    try:
        pts = np.array([(float(r["latitude"]), float(r["longitude"])) for r in rows])
    except ValueError as exc:
        raise InputError(f"{path}: bad coordinate: {exc}") from exc
    lat_lo, lat_hi, lon_lo, lon_hi = BBOX
    keep = (pts[:, 0] > lat_lo) & (pts[:, 0] < lat_hi) & (pts[:, 1] > lon_lo) & (
        pts[:, 1] < lon_hi)
    if not keep.any():
        raise InputError(f"{path}: no station lies inside Shanghai")
    return pts[keep]


def nearest_district(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """District whose centre is nearest, distance scaled by the district's size."""
    dy = (lat[:, None] - geo.LAT[None, :]) * KM_PER_DEG_LAT
    dx = (lon[:, None] - geo.LON[None, :]) * KM_PER_DEG_LON
    return np.argmin(np.hypot(dx, dy) / np.sqrt(geo.AREA)[None, :], axis=1)


def _ordinary(rng: np.random.Generator, n: int, stations: np.ndarray | None):
    if stations is not None:
        pick = stations[rng.integers(0, len(stations), n)]
        lat = pick[:, 0] + rng.normal(0, 0.15 / KM_PER_DEG_LAT, n)
        lon = pick[:, 1] + rng.normal(0, 0.15 / KM_PER_DEG_LON, n)
        return lat, lon, nearest_district(lat, lon)
    # Downtown is denser: weight by population, with area counting a little.
    w = geo.POPULATION ** 0.85 * geo.AREA ** 0.15
    district = rng.choice(len(geo.DISTRICTS), size=n, p=w / w.sum())
    sigma_km = np.sqrt(geo.AREA[district]) / 3.0
    lat = geo.LAT[district] + rng.normal(0, 1, n) * sigma_km / KM_PER_DEG_LAT
    lon = geo.LON[district] + rng.normal(0, 1, n) * sigma_km / KM_PER_DEG_LON
    lat_lo, lat_hi, lon_lo, lon_hi = BBOX
    return np.clip(lat, lat_lo, lat_hi), np.clip(lon, lon_lo, lon_hi), district


def _kinds(rng: np.random.Generator, district: np.ndarray) -> np.ndarray:
    kind = np.empty(len(district), dtype=np.int64)
    for ring, mix in geo.KIND_MIX.items():
        sel = geo.RING[district] == ring
        codes = np.array([geo.KIND_INDEX[k] for k in mix])
        p = np.array(list(mix.values()))
        kind[sel] = rng.choice(codes, size=int(sel.sum()), p=p / p.sum())
    return kind


def _group(mask: np.ndarray, district: np.ndarray) -> Group:
    cells = np.flatnonzero(mask)
    cells = cells[np.argsort(district[cells], kind="stable")]
    count = np.bincount(district[cells], minlength=len(geo.DISTRICTS))
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Group(cells, start, count)


def build_grid(rng: np.random.Generator, *, cells: int,
               stations: np.ndarray | None = None) -> CellGrid:
    """A grid of about ``cells`` cells (landmark clusters included)."""
    site_total = sum(s.cells for s in geo.SITES)
    lat, lon, district = _ordinary(rng, max(cells - site_total, 16 * 8), stations)
    kind = _kinds(rng, district)
    parts = [(lat, lon, district, kind)]
    for site in geo.SITES:
        k = site.cells
        parts.append((site.lat + rng.normal(0, 0.4 / KM_PER_DEG_LAT, k),
                      site.lon + rng.normal(0, 0.4 / KM_PER_DEG_LON, k),
                      np.full(k, geo.INDEX[site.district]),
                      np.full(k, geo.KIND_INDEX[site.kind])))
    lat, lon, district, kind = (np.concatenate(c) for c in zip(*parts, strict=True))
    home_kinds = [geo.KIND_INDEX[k] for k in geo.HOME_KINDS]
    work_kinds = [geo.KIND_INDEX[k] for k in geo.WORK_KINDS]
    airports = np.flatnonzero(kind == geo.KIND_INDEX["airport"])
    return CellGrid(
        ids=digit_strings("C", np.arange(len(lat)) + 1, 6), lat=lat, lon=lon,
        district=district, kind=kind, homes=_group(np.isin(kind, home_kinds), district),
        works=_group(np.isin(kind, work_kinds), district), airports=airports)

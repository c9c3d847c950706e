"""Which cells of the cell table lie within a radius of a point.

Exact haversine distance over the cells in the query's latitude band, vectorised with
numpy: a cell table is small (a province has ~10^5 cells) and exact distance is cheap, so a
hexagonal index (h3) would only add a dependency and an approximation at the circle's edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.geofence.directory import CellIndex

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)


def cells_within(cells: CellIndex, lat: float, lon: float, radius_m: float) -> list[str]:
    """The ids of the cells within ``radius_m`` of (lat, lon), sorted."""
    return Coordinates(cells).within(lat, lon, radius_m)


class Coordinates:
    """The cell table's coordinates (radians), and their order by latitude: a query looks
    at the cells of its latitude band only."""

    def __init__(self, cells: CellIndex) -> None:
        lat, lon = getattr(cells, "lat", None), getattr(cells, "lon", None)
        if lat is None or lon is None:
            raise InputError("the cell table has no coordinates: a centre and radius needs the "
                             "warehouse's cells table")  # fmt: skip
        self.ids = np.asarray(cells.ids, dtype=object)
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        self.order = np.argsort(lat, kind="stable")
        self.lat_sorted = lat[self.order]
        self.lat, self.lon = np.radians(lat), np.radians(lon)

    def distances(self, lat: float, lon: float, idx: np.ndarray) -> np.ndarray:
        lat0, lon0 = np.radians(lat), np.radians(lon)
        a = (np.sin((self.lat[idx] - lat0) / 2) ** 2
             + np.cos(lat0) * np.cos(self.lat[idx]) * np.sin((self.lon[idx] - lon0) / 2) ** 2)
        return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))

    def within(self, lat: float, lon: float, radius_m: float) -> list[str]:
        band = np.degrees(radius_m / EARTH_RADIUS_M) * 1.001
        lo, hi = np.searchsorted(self.lat_sorted, [lat - band, lat + band + 1e-12])
        idx = self.order[lo:hi]
        return sorted(self.ids[idx[self.distances(lat, lon, idx) <= radius_m]].tolist())

    def nearest(self, lat: float, lon: float) -> tuple[str, float] | None:
        if not len(self.ids):
            return None
        d = self.distances(lat, lon, np.arange(len(self.ids)))
        i = int(np.argmin(d))
        return str(self.ids[i]), float(d[i])

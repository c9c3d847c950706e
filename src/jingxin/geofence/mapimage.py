"""A fence on a map (PNG) for ``jingxin fence show``: its cells, the cells around them, the
radius it was drawn with, a scale bar. No tiles and nothing downloaded: the picture is the
cell table itself, in kilometres around the fence (an equirectangular projection, exact
enough over a few kilometres), drawn with matplotlib's Agg canvas (no display, no pyplot
state), so the same fence and cells give the same bytes.
"""

from __future__ import annotations

import io
import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jingxin.errors import InputError
from jingxin.geofence.types import Fence

if TYPE_CHECKING:
    from jingxin.geofence.directory import CellIndex

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320
NICE_KM = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50)
# Families that have Chinese glyphs, the first one installed is used for the title.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC",
             "Droid Sans Fallback", "AR PL UMing CN")  # fmt: skip
FENCE_COLOUR, OTHER_COLOUR, RADIUS_COLOUR = "#d62728", "#9a9a9a", "#1f77b4"


def draw(fence: Fence, cells: CellIndex, path: Path) -> Path:
    """Write ``fence`` on a map of the cell table to ``path`` (PNG) and return the path."""
    image = render(fence, cells)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image)
    return path


def render(fence: Fence, cells: CellIndex) -> bytes:
    """``fence`` on a map of the cell table, as PNG bytes (what :func:`draw` writes)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    if getattr(cells, "lat", None) is None or getattr(cells, "lon", None) is None:
        raise InputError("the cell table has no coordinates: a map needs the warehouse's cells")
    lat, lon = np.asarray(cells.lat, np.float64), np.asarray(cells.lon, np.float64)
    found = cells.lookup(list(fence.cells))
    mine = found[found >= 0]
    if fence.centre is not None:
        lat0, lon0 = fence.centre
    elif len(mine):
        lat0, lon0 = float(lat[mine].mean()), float(lon[mine].mean())
    else:
        raise InputError(f"fence {fence.code}: none of its cells is in the cell table")
    x = (lon - lon0) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))
    y = (lat - lat0) * KM_PER_DEG_LAT
    radius_km = (fence.radius_m or 0) / 1000
    extent = max(float(np.abs(x[mine]).max(initial=0)), float(np.abs(y[mine]).max(initial=0)),
                 radius_km, 0.25)  # fmt: skip
    window = 2 * extent * 1.05
    around = (np.abs(x) <= window) & (np.abs(y) <= window)
    around[mine] = False

    fig = Figure(figsize=(7, 7), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(x[around], y[around], s=10, c=OTHER_COLOUR, marker="^", linewidths=0,
               label=f"other cells ({int(around.sum())})")  # fmt: skip
    ax.scatter(x[mine], y[mine], s=36, c=FENCE_COLOUR, marker="^", edgecolors="black",
               linewidths=0.4, label=f"fence cells ({len(mine)})", zorder=3)  # fmt: skip
    if len(mine) <= 25:
        for i in mine:
            ax.annotate(cells.ids[i], (x[i], y[i]), xytext=(3, 3), textcoords="offset points",
                        fontsize=6, color="#444444")  # fmt: skip
    if radius_km:
        ax.add_patch(Circle((0, 0), radius_km, fill=False, color=RADIUS_COLOUR, linestyle="--",
                            linewidth=1.2, label=f"radius {fence.radius_m:g} m"))  # fmt: skip
        ax.plot([0], [0], marker="+", color=RADIUS_COLOUR, markersize=10)
    ax.set_xlim(-window, window)
    ax.set_ylim(-window, window)
    ax.set_aspect("equal")
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    ax.set_xlabel("km east of the centre")
    ax.set_ylabel("km north of the centre")
    _scale_bar(ax, window)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    missing = len(fence.cells) - len(mine)
    note = f"; {missing} listed cell(s) not in the cell table" if missing else ""
    ax.text(0.01, 0.01, f"centre {lat0:.5f}, {lon0:.5f}{note}", transform=ax.transAxes,
            fontsize=7, color="#555555", va="bottom")  # fmt: skip
    _title(ax, fence)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _scale_bar(ax: object, window: float) -> None:
    """A bar of a round length (about a quarter of the view) in the lower left."""
    length = max((k for k in NICE_KM if k <= window / 2), default=NICE_KM[0])
    x0, y0 = -window * 0.92, -window * 0.86
    ax.plot([x0, x0 + length], [y0, y0], color="black", linewidth=3,  # type: ignore[attr-defined]
            solid_capstyle="butt")  # fmt: skip
    label = f"{length:g} km" if length >= 1 else f"{length * 1000:g} m"
    ax.text(x0 + length / 2, y0 + window * 0.03, label, ha="center",  # type: ignore[attr-defined]
            fontsize=8)  # fmt: skip


def _title(ax: object, fence: Fence) -> None:
    cells = f"{len(fence.cells)} cell{'s' * (len(fence.cells) != 1)}"
    family = _font_with(fence.name)
    name = f" · {fence.name}" if family is not None else ""
    text = f"{fence.code}{name} · {fence.scenario} · {cells}"
    kwargs = {"fontfamily": family} if family else {}
    ax.set_title(text, fontsize=11, **kwargs)  # type: ignore[attr-defined]


def _font_with(text: str) -> str | None:
    """A font family that has every glyph of ``text`` ("" for the default one), or None:
    the name is then left out rather than drawn as empty boxes."""
    if all(ord(ch) in _charmap("") for ch in text):
        return ""
    for family in _cjk_families():
        if all(ord(ch) in _charmap(family) for ch in text):
            return family
    return None


@cache
def _cjk_families() -> tuple[str, ...]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(f for f in CJK_FONTS if f in installed)


@cache
def _charmap(family: str) -> frozenset[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    props = font_manager.FontProperties(family=family or None)
    return frozenset(FT2Font(font_manager.findfont(props)).get_charmap())

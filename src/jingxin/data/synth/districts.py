"""Shanghai's sixteen districts and its landmark sites: the geography the cells, regions
and trips are drawn on.

Areas (km²) and resident populations (10,000s, 2020 census) are public figures; centres
are approximate district centroids. ``ring`` is 0 for the old city core, 1 for the
inner suburbs, 2 for the outer districts: it sets cell density and land use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class District:
    name: str
    lat: float
    lon: float
    area_km2: float
    population_10k: float
    ring: int


DISTRICTS: tuple[District, ...] = (
    District("黄浦区", 31.2317, 121.4846, 20.5, 66.2, 0),
    District("徐汇区", 31.1885, 121.4365, 54.8, 111.3, 0),
    District("长宁区", 31.2204, 121.4244, 38.3, 69.3, 0),
    District("静安区", 31.2490, 121.4560, 36.9, 97.6, 0),
    District("普陀区", 31.2490, 121.3970, 54.8, 124.0, 0),
    District("虹口区", 31.2646, 121.5051, 23.5, 75.8, 0),
    District("杨浦区", 31.2596, 121.5260, 60.7, 124.2, 0),
    District("浦东新区", 31.2000, 121.6300, 1210.4, 568.2, 1),
    District("闵行区", 31.1128, 121.3816, 370.8, 265.3, 1),
    District("宝山区", 31.4051, 121.4491, 270.9, 223.5, 1),
    District("嘉定区", 31.3747, 121.2654, 464.2, 183.4, 2),
    District("金山区", 30.7850, 121.2400, 586.1, 82.3, 2),
    District("松江区", 31.0323, 121.2277, 605.6, 190.9, 2),
    District("青浦区", 31.1498, 121.1241, 670.1, 127.1, 2),
    District("奉贤区", 30.9180, 121.4740, 687.4, 114.1, 2),
    District("崇明区", 31.6230, 121.5500, 1185.5, 63.7, 2),
)
NAMES = tuple(d.name for d in DISTRICTS)
LAT = np.array([d.lat for d in DISTRICTS])
LON = np.array([d.lon for d in DISTRICTS])
AREA = np.array([d.area_km2 for d in DISTRICTS])
POPULATION = np.array([d.population_10k for d in DISTRICTS])
RING = np.array([d.ring for d in DISTRICTS])
POPULATION_SHARE = POPULATION / POPULATION.sum()
DOWNTOWN = RING == 0
INDEX = {name: i for i, name in enumerate(NAMES)}


@dataclass(frozen=True)
class Site:
    """A landmark with its own cells: airports, railway stations, scenic spots."""

    name: str
    kind: str
    district: str
    lat: float
    lon: float
    cells: int


SITES: tuple[Site, ...] = (
    Site("浦东国际机场", "airport", "浦东新区", 31.1443, 121.8083, 40),
    Site("虹桥国际机场", "airport", "闵行区", 31.1979, 121.3363, 25),
    Site("虹桥火车站", "rail", "闵行区", 31.1946, 121.3204, 20),
    Site("上海火车站", "rail", "静安区", 31.2495, 121.4557, 12),
    Site("上海南站", "rail", "徐汇区", 31.1546, 121.4297, 8),
    Site("上海西站", "rail", "普陀区", 31.2627, 121.4037, 4),
    Site("外滩", "scenic", "黄浦区", 31.2400, 121.4900, 10),
    Site("豫园", "scenic", "黄浦区", 31.2272, 121.4921, 5),
    Site("上海迪士尼", "scenic", "浦东新区", 31.1434, 121.6570, 12),
    Site("朱家角", "scenic", "青浦区", 31.1087, 121.0546, 4),
    Site("陆家嘴", "business", "浦东新区", 31.2397, 121.4998, 30),
    Site("张江", "campus", "浦东新区", 31.2033, 121.5906, 15),
)
AIRPORTS = ("浦东国际机场", "虹桥国际机场")

# Land use of ordinary cells by ring (core, inner suburbs, outer districts).
KINDS = ("residential", "business", "transport", "airport", "rail", "hospital", "mall",
         "campus", "scenic", "suburban", "hall")
KIND_MIX = {
    0: {"residential": 0.40, "business": 0.24, "transport": 0.09, "hospital": 0.04,
        "mall": 0.10, "campus": 0.04, "scenic": 0.02, "hall": 0.07},
    1: {"residential": 0.44, "business": 0.12, "transport": 0.07, "hospital": 0.03,
        "mall": 0.06, "campus": 0.05, "scenic": 0.01, "suburban": 0.17, "hall": 0.05},
    2: {"residential": 0.33, "business": 0.06, "transport": 0.05, "hospital": 0.03,
        "mall": 0.04, "campus": 0.03, "scenic": 0.02, "suburban": 0.40, "hall": 0.04},
}
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
HOME_KINDS = ("residential", "suburban")
WORK_KINDS = ("business", "campus", "hospital", "mall", "hall", "transport")

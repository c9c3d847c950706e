"""Product holdings with the bundles real bases show, so that market-basket analysis has
something to find.

Broadband is the anchor: most broadband households also take IPTV, many a family plan.
Chronic data over-users hold data packs, heavy voice users voice packs, travellers
roaming packs, the young video and music memberships, the older a ringback tone. Each
holding starts after network entry; about 15% have ended.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.catalogue import PRODUCT_IDS, PRODUCT_INDEX
from jingxin.data.synth.columns import categorical, dates
from jingxin.data.synth.subscribers import Population
from jingxin.data.warehouse.schema import HOLDINGS

N_PRODUCTS = len(PRODUCT_INDEX)


def _choose(rng: np.random.Generator, holds: np.ndarray, take: np.ndarray,
            products: list[str], p: list[float]) -> None:
    """Mark one of ``products`` (by weight ``p``) for the rows where ``take`` is true."""
    rows = np.flatnonzero(take)
    codes = np.array([PRODUCT_INDEX[x] for x in products])
    holds[rows, codes[rng.choice(len(codes), len(rows), p=np.array(p) / sum(p))]] = True


def draw_holdings(rng: np.random.Generator, pop: Population) -> np.ndarray:
    """(n, products) booleans: who has ever held what."""
    n = len(pop)
    r = lambda: rng.random(n, dtype=np.float32)
    holds = np.zeros((n, N_PRODUCTS), dtype=bool)
    family_age = (pop.age > 28) & (pop.age < 62)
    broadband = r() < np.where(pop.prepaid, 0.05, 0.22 + 0.18 * family_age)
    _choose(rng, holds, broadband, ["BB-100M", "BB-300M", "BB-1000M"], [0.3, 0.5, 0.2])
    _choose(rng, holds, r() < np.where(broadband, 0.65, 0.02), ["TV-BASIC", "TV-PLUS"],
            [0.7, 0.3])
    _choose(rng, holds, r() < np.where(broadband, 0.40, 0.05), ["FM-SHARE", "FM-MEMBER"],
            [0.6, 0.4])
    data_heavy = pop.data_fit > 1.0
    _choose(rng, holds, r() < 0.04 + 0.45 * data_heavy,
            ["DP-1G", "DP-5G", "DP-10G", "DP-30G", "DP-NIGHT"], [0.2, 0.3, 0.25, 0.15, 0.1])
    _choose(rng, holds, r() < 0.03 + 0.35 * (pop.voice_fit > 1.0), ["VP-100", "VP-300"],
            [0.6, 0.4])
    _choose(rng, holds, r() < 0.01 + 0.45 * (pop.intl_rate > 0), ["RM-ASIA", "RM-GLOBAL"],
            [0.6, 0.4])
    young = pop.age < 30
    _choose(rng, holds, r() < 0.10 + 0.25 * young, ["VD-TENCENT", "VD-IQIYI", "VD-MIGU"],
            [0.45, 0.35, 0.2])
    _choose(rng, holds, r() < 0.03 + 0.12 * young, ["MU-MIGU"], [1.0])
    _choose(rng, holds, r() < 0.06 + 0.12 * (pop.age > 50), ["RB-CL"], [1.0])
    _choose(rng, holds, r() < 0.02 + 0.05 * (pop.generation == 5), ["IN-PHONE", "IN-ACCIDENT"],
            [0.7, 0.3])
    _choose(rng, holds, r() < 0.03 + 0.05 * pop.app_user, ["CL-50G", "CL-200G"], [0.7, 0.3])
    return holds


def holdings_table(rng: np.random.Generator, pop: Population, holds: np.ndarray,
                   cal: Calendar) -> tuple[pa.Table, np.ndarray]:
    """The ``holdings`` rows and the (n, products) matrix of holdings current at as-of."""
    row, product = np.nonzero(holds)
    as_of = cal.as_of_day
    first = np.maximum(pop.entry_day[row], as_of - 5 * 365)
    span = np.maximum(as_of - first, 1)
    start = first + (rng.random(len(row)) * span).astype(np.int64)
    ended = rng.random(len(row)) < 0.15
    end = start + 1 + (rng.random(len(row)) * (as_of - start)).astype(np.int64)
    ended &= end < as_of
    current = holds.copy()
    current[row[ended], product[ended]] = False
    table = pa.Table.from_arrays(
        [pa.array(pop.subscriber_id[row]), categorical(PRODUCT_IDS, product), dates(start),
         dates(np.where(ended, end, 0), mask=~ended)], schema=HOLDINGS.schema)
    return table, current

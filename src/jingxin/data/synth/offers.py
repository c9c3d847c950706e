"""Past offers and whether they were taken: the propensity training labels.

Each subscriber received a few offers in the 183 days before as-of (SMS mostly; app,
hall, hotline too). About 40% were targeted at a visible need (a data pack for someone
over their data allowance, a roaming pack for a traveller, IPTV for a broadband household
without it...), the rest were blanket campaigns. The response is drawn from the logistic
model :data:`jingxin.data.synth.labels.OFFER_COEF`; its oracle AUC goes to synth.json.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.catalogue import PRODUCT_CATEGORY, PRODUCT_IDS, PRODUCT_INDEX
from jingxin.data.synth.columns import categorical, digit_strings, timestamps
from jingxin.data.synth.labels import (
    MICROS_PER_DAY,
    OFFER_COEF,
    OFFER_DAYS,
    Oracle,
    _sigmoid,
)
from jingxin.data.synth.subscribers import Population
from jingxin.data.synth.usage import UsageSummary
from jingxin.data.warehouse.schema import OFFERS

OFFER_CHANNELS = ("sms", "app", "hall", "hotline")
HEAVY_MB = 8192.0


def _targeted(pop: Population, summary: UsageSummary, current: np.ndarray) -> np.ndarray:
    """The product a need-based campaign would pick for each subscriber."""
    has = lambda cat: current[:, PRODUCT_CATEGORY == cat].any(axis=1)
    pick = np.full(len(pop), PRODUCT_INDEX["VD-TENCENT"])
    rules = [  # later rules win: most specific need last
        (~has("broadband") & (pop.age > 28) & (pop.age < 62), "BB-300M"),
        (pop.voice_fit > 1.0, "VP-100"),
        (has("broadband") & ~has("family"), "FM-SHARE"),
        (has("broadband") & ~has("iptv"), "TV-BASIC"),
        (summary.data_3m > HEAVY_MB, "DP-10G"),
        (pop.data_fit > 1.0, "DP-5G"),
        (pop.intl_rate > 0, "RM-ASIA"),
    ]
    for mask, product in rules:
        pick = np.where(mask, PRODUCT_INDEX[product], pick)
    return pick


def _response_logit(pop, summary, current, row, product, channel) -> np.ndarray:
    c = OFFER_COEF
    cat = PRODUCT_CATEGORY[product]
    has = lambda name: current[row][:, PRODUCT_CATEGORY == name].any(axis=1)
    data_pack = cat == "data_pack"
    return (c["intercept"]
            + c["data_pack x data need"] * (data_pack & (pop.data_fit[row] > 1.0))
            + c["data_pack x heavy user"] * (data_pack & (summary.data_3m[row] > HEAVY_MB))
            + c["roaming_pack x traveller"] * ((cat == "roaming_pack") & (pop.intl_rate[row] > 0))
            + c["iptv x broadband without iptv"] * ((cat == "iptv") & has("broadband")
                                                    & ~has("iptv"))
            + c["family x broadband"] * ((cat == "family") & has("broadband"))
            + c["video x under 30"] * ((cat == "video") & (pop.age[row] < 30))
            + c["voice_pack x voice need"] * ((cat == "voice_pack") & (pop.voice_fit[row] > 1.0))
            + c["price_sensitivity (0..1)"] * pop.price_sensitivity[row]
            + c["already holds it"] * current[row, product]
            + c["complaint_sensitive"] * pop.complaint_sensitive[row]
            + np.array([0.0, c["channel app"], c["channel hall"], c["channel hotline"]])[channel])


def offers(rng: np.random.Generator, pop: Population, summary: UsageSummary,
           current: np.ndarray, cal: Calendar, oracle: Oracle) -> pa.Table:
    n = len(pop)
    count = np.minimum(rng.poisson(0.9, n), 99)
    row = np.repeat(np.arange(n), count)
    k = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    targeted = rng.random(len(row)) < 0.4
    product = np.where(targeted, _targeted(pop, summary, current)[row],
                       rng.integers(0, len(PRODUCT_CATEGORY), len(row)))
    channel = rng.choice(4, len(row), p=[0.6, 0.2, 0.1, 0.1])
    z = _response_logit(pop, summary, current, row, product, channel)
    p = _sigmoid(z + OFFER_COEF["noise_sd (hidden)"] * rng.standard_normal(len(row)))
    responded = rng.random(len(row)) < p
    oracle.add(p, responded)
    lo = np.maximum(pop.entry_day[row], cal.as_of_day - OFFER_DAYS)
    hi = np.where(pop.churned_day[row] >= 0, pop.churned_day[row], cal.as_of_day)
    day = lo + (rng.random(len(row)) * np.maximum(hi - lo, 1)).astype(np.int64)
    sent = day * MICROS_PER_DAY + (9 * 3600 + rng.integers(0, 11 * 3600, len(row))) * 1_000_000
    delay = (rng.exponential(1.5, len(row)) * MICROS_PER_DAY).astype(np.int64)
    return pa.Table.from_arrays(
        [digit_strings("OF", pop.index[row] * 100 + k, 12), pa.array(pop.subscriber_id[row]),
         categorical(PRODUCT_IDS, product), timestamps(sent),
         categorical(OFFER_CHANNELS, channel), pa.array(responded),
         timestamps(sent + delay, mask=~responded)], schema=OFFERS.schema)

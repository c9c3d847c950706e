"""Training labels with a known ceiling: churn within three months, and offer responses.

Both are drawn from logistic models of features a model can see in the other tables
(tenure, payment, status, complaints, the usage drop, bill shock, top-up habits, number
segment, contract end, holdings...) plus a little unobserved noise. The true
probabilities are kept, so the *oracle AUC* (the AUC of the true probability against the
drawn labels) is the best any model can reach; it is accumulated over the run in a
histogram of probabilities and written to synth.json. Coefficients are in
:data:`CHURN_COEF` and :data:`OFFER_COEF` and in docs/synth.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from jingxin.data.synth.calendar import Calendar
from jingxin.data.synth.catalogue import PRODUCT_CATEGORY
from jingxin.data.synth.columns import dates
from jingxin.data.synth.subscribers import CHURNED, DOUBLE_STOP, SUSPENDED, Population
from jingxin.data.synth.usage import UsageSummary
from jingxin.data.warehouse.schema import CHURN_LABELS

CHURN_COEF = {
    "intercept": -3.4, "tenure_under_6m": 0.85, "tenure_6_12m": 0.4, "tenure_over_5y": -0.35,
    "prepaid": 0.4, "suspended": 0.85, "double_stop": 1.7, "complaints (each, max 3)": 0.4,
    "usage_drop": 1.2, "bill_shock": 0.6, "price_sensitivity (0..1)": 0.75,
    "small_topups": 0.25, "competitor_prone_segment": 0.4, "contract_ends_within_3m": 0.6,
    "under_contract_longer": -0.85, "app_user": -0.25, "bundle (broadband or family)": -0.5,
    "star_level (each)": -0.07, "age_under_25": 0.25, "drifting (hidden)": 0.7,
    "noise_sd (hidden)": 0.4,
}
OFFER_COEF = {
    "intercept": -4.0, "data_pack x data need": 2.4, "data_pack x heavy user": 1.2,
    "roaming_pack x traveller": 3.0, "iptv x broadband without iptv": 1.9,
    "family x broadband": 1.3, "video x under 30": 1.3, "voice_pack x voice need": 1.5,
    "price_sensitivity (0..1)": 1.2, "already holds it": -3.8, "complaint_sensitive": -2.2,
    "channel hall": 1.3, "channel app": 0.75, "channel hotline": 0.45, "noise_sd (hidden)": 0.5,
}
MICROS_PER_DAY = 86_400_000_000
OFFER_DAYS = 183
BINS = 1 << 16


@dataclass
class Oracle:
    """Histograms of true probabilities by label: the AUC without keeping every row."""

    positive: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    negative: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))

    def add(self, p: np.ndarray, y: np.ndarray) -> None:
        idx = np.minimum((p * BINS).astype(np.int64), BINS - 1)
        self.positive += np.bincount(idx[y], minlength=BINS)
        self.negative += np.bincount(idx[~y], minlength=BINS)

    @property
    def rate(self) -> float:
        total = self.positive.sum() + self.negative.sum()
        return float(self.positive.sum() / total) if total else 0.0

    @property
    def auc(self) -> float | None:
        pos, neg = self.positive.sum(), self.negative.sum()
        if not pos or not neg:
            return None
        below = np.cumsum(self.negative) - self.negative
        wins = (self.positive * (below + 0.5 * self.negative)).sum()
        return float(wins / (pos * neg))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def churn_probability(rng: np.random.Generator, pop: Population, summary: UsageSummary,
                      complaints: np.ndarray, current: np.ndarray, cal: Calendar) -> np.ndarray:
    c = CHURN_COEF
    tenure = pop.tenure_days(cal)
    as_of = cal.as_of_day
    bundle = current[:, PRODUCT_CATEGORY == "broadband"].any(axis=1) | current[
        :, PRODUCT_CATEGORY == "family"].any(axis=1)
    ends_soon = (pop.contract_end >= as_of) & (pop.contract_end < as_of + 91)
    z = (c["intercept"] + c["tenure_under_6m"] * (tenure < 183)
         + c["tenure_6_12m"] * ((tenure >= 183) & (tenure < 366))
         + c["tenure_over_5y"] * (tenure > 5 * 365) + c["prepaid"] * pop.prepaid
         + c["suspended"] * (pop.status == SUSPENDED) + c["double_stop"] * (pop.status == DOUBLE_STOP)
         + c["complaints (each, max 3)"] * np.minimum(complaints, 3)
         + c["usage_drop"] * summary.drop + c["bill_shock"] * summary.bill_shock
         + c["price_sensitivity (0..1)"] * pop.price_sensitivity
         + c["small_topups"] * summary.small_topups
         + c["competitor_prone_segment"] * pop.prone + c["contract_ends_within_3m"] * ends_soon
         + c["under_contract_longer"] * (pop.contract_end >= as_of + 91)
         + c["app_user"] * pop.app_user + c["bundle (broadband or family)"] * bundle
         + c["star_level (each)"] * pop.star + c["age_under_25"] * (pop.age < 25)
         + c["drifting (hidden)"] * pop.disengaging
         + c["noise_sd (hidden)"] * rng.standard_normal(len(pop)))
    return _sigmoid(z)


def churn_labels(rng: np.random.Generator, pop: Population, p: np.ndarray, cal: Calendar,
                 oracle: Oracle) -> pa.Table:
    """Labels for everyone still a subscriber at as-of (the already churned have none)."""
    keep = pop.status != CHURNED
    p = p[keep]
    churned = rng.random(len(p)) < p
    oracle.add(p, churned)
    span = cal.label_end_day() - cal.as_of_day
    day = cal.as_of_day + (rng.random(len(p)) * span).astype(np.int64)
    n = len(p)
    return pa.Table.from_arrays(
        [pa.array(pop.subscriber_id[keep]), dates(np.full(n, cal.as_of_day)),
         pa.array(churned), dates(day, mask=~churned)], schema=CHURN_LABELS.schema)

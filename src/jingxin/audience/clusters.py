"""Behaviour clusters: k-means over standardised features plus the tenure group.

``MiniBatchKMeans`` on the feature build of one date: usage averages, ARPU, price
sensitivity, contacts and complaints (standardised) and the tenure group (one-hot). ``k``
is a parameter or chosen by the silhouette score on a sample (k = 2..8). Each cluster gets
a profile: size, mean of every feature, the dominant plan and tenure group.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse

BEHAVIOUR = ["arpu", "data_mb_3m", "voice_min_3m", "sms_3m", "topup_amount_3m",
             "price_sensitivity", "hall_contacts", "electronic_contacts", "complaint_count",
             "tenure_months"]
TENURE = ["under_6m", "6_12m", "over_12m"]


@dataclass(frozen=True)
class Clustering:
    k: int
    silhouette: float | None
    assignments: pd.DataFrame  # subscriber_id, cluster
    profile: pd.DataFrame  # one row per cluster


def matrix(frame: pd.DataFrame) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(frame[BEHAVIOUR].astype("float64").fillna(0.0))
    tenure = np.stack([(frame["tenure_group"] == g).to_numpy(float) for g in TENURE], axis=1)
    return np.hstack([x, tenure])


def choose_k(x: np.ndarray, *, seed: int, sample: int = 5000,
             ks: range = range(2, 9)) -> tuple[int, float]:
    """The k with the best silhouette on a random sample of rows."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    rows = x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]
    best = (ks[0], -1.0)
    for k in ks:
        if k >= len(rows):
            break
        labels = MiniBatchKMeans(k, random_state=seed, n_init=3).fit_predict(rows)
        if len(set(labels)) < 2:
            continue
        s = float(silhouette_score(rows, labels))
        if s > best[1]:
            best = (k, s)
    return best


def profile(frame: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    f = frame.assign(cluster=labels)
    g = f.groupby("cluster")
    out = g[BEHAVIOUR].mean().round(2)
    out.insert(0, "size", g.size())
    out["dominant_plan"] = g["plan_id"].agg(lambda s: s.mode().iloc[0] if len(s) else None)
    out["dominant_tenure"] = g["tenure_group"].agg(lambda s: s.mode().iloc[0])
    return out.reset_index()


def cluster(warehouse: Warehouse, *, as_of: dt.date | None = None, k: int | None = None,
            seed: int = 0) -> Clustering:

    from jingxin.audience.compile import features_as_of

    day = features_as_of(warehouse, as_of)
    feats = warehouse.table("features")
    subs = warehouse.table("subscribers").select("subscriber_id", "plan_id")
    t = feats.filter(feats.as_of == day).inner_join(subs, "subscriber_id")
    frame = t.select("subscriber_id", "plan_id", "tenure_group", *BEHAVIOUR).to_pandas()
    frame = frame.sort_values("subscriber_id", ignore_index=True)
    if len(frame) < 3:
        raise InputError(f"clustering needs at least 3 subscribers with features as of "
                         f"{day}; found {len(frame)}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # see tabular.fit: OpenMP threads spin on a busy machine
        return _cluster(frame, day, k, seed)


def _cluster(frame: pd.DataFrame, day: dt.date, k: int | None, seed: int) -> Clustering:
    from sklearn.cluster import MiniBatchKMeans

    x = matrix(frame)
    score = None
    if k is None:
        k, score = choose_k(x, seed=seed)
    if not 2 <= k < len(frame):
        raise InputError(f"k must be between 2 and {len(frame) - 1}, got {k}")
    labels = MiniBatchKMeans(k, random_state=seed, n_init=3).fit_predict(x)
    assignments = pd.DataFrame({"subscriber_id": frame["subscriber_id"], "as_of": day,
                                "cluster": labels.astype("int32")})
    return Clustering(k, score, assignments, profile(frame, labels))

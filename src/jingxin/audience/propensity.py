"""Churn risk and offer-response propensity over the warehouse, and batch scoring.

Training rows join the labels to the feature table *as of the label's date*, so a model
only ever sees what was known then:

* churn: ``churn_labels`` (subscriber, as_of, churned_3m) ⋈ ``features`` on both keys;
* response: ``offers`` (sent_at → the first day of its month) ⋈ ``features`` on that date,
  plus the offered product's category.

Subscriber attributes (payment, star level, handset generation, app flag) are added to
both. The hold-out is time-based: train on the earlier as_of months, test on the latest.
Models are saved with joblib under ``var/models/``; :func:`score` writes the ``scores``
table (subscriber_id, as_of, model, score).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from jingxin.audience import tabular
from jingxin.audience.features import FEATURES
from jingxin.audience.source import exists, read
from jingxin.errors import InputError, WarehouseError

if TYPE_CHECKING:
    from jingxin.data.warehouse.connection import Warehouse

MODELS = ("churn", "response")
PROFILE = ["subscriber_id", "payment", "star_level", "handset_generation", "app_user",
           "birthday", "contract_end"]
# Location columns are identifiers, not behaviour: a model should not learn cell ids.
NOT_FEATURES = {"subscriber_id", "home_cell", "work_cell", "home_lat", "home_lon",
                "home_district", "work_district"}


def _features(warehouse: Warehouse) -> pd.DataFrame:
    if not exists(warehouse, "features"):
        raise WarehouseError("the features table is missing; build it for each label month "
                             "with `jingxin audience features --as-of DATE`")
    f = warehouse.table("features").to_pandas()
    p = read(warehouse, "subscribers", columns=PROFILE).select(*PROFILE).to_pandas()
    f["as_of"] = pd.to_datetime(f["as_of"]).dt.date
    return scoring_frame(f.merge(p, on="subscriber_id", how="left"))


def scoring_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Age and months left on the contract, both as of each row's date (never "now", so a
    past label month sees what was true then). The subscriber's current status is left
    out on purpose: for a past month it would give the label away."""
    as_of = pd.to_datetime(frame["as_of"])
    birthday = pd.to_datetime(frame.pop("birthday"))
    contract = pd.to_datetime(frame.pop("contract_end"))
    frame["age"] = ((as_of - birthday).dt.days / 365.25).round(1)
    left = ((contract - as_of).dt.days / 30.44).round(1)
    frame["contract_months_left"] = left.where(left.isna() | (left > 0), 0.0).fillna(-1.0)
    return frame


def churn_frame(warehouse: Warehouse) -> pd.DataFrame:
    if not exists(warehouse, "churn_labels"):
        raise WarehouseError("warehouse table 'churn_labels' is missing: churn training "
                             "needs labels (subscriber_id, as_of, churned_3m)")
    labels = read(warehouse, "churn_labels", columns=["subscriber_id", "as_of", "churned_3m"])
    lab = labels.select("subscriber_id", "as_of", "churned_3m").to_pandas()
    lab["as_of"] = pd.to_datetime(lab["as_of"]).dt.date
    f = _features(warehouse)
    frame = lab.merge(f, on=["subscriber_id", "as_of"], how="inner")
    if frame.empty:
        raise WarehouseError(
            f"no churn label matches a feature build: labels as of "
            f"{sorted(set(lab['as_of']))[:6]}, features as of {sorted(set(f['as_of']))[:6]}")
    return frame


def response_frame(warehouse: Warehouse) -> pd.DataFrame:
    if not exists(warehouse, "offers"):
        raise WarehouseError("warehouse table 'offers' is missing: response training needs "
                             "offers with the 'responded' column")
    offers = read(warehouse, "offers", columns=["subscriber_id", "product_id", "sent_at",
                                                "responded"])
    o = offers.select("subscriber_id", "product_id", "sent_at", "responded").to_pandas()
    o["as_of"] = pd.to_datetime(o["sent_at"]).dt.to_period("M").dt.start_time.dt.date
    if exists(warehouse, "products"):
        prods = warehouse.table("products").select("product_id", "category").to_pandas()
        o = o.merge(prods, on="product_id", how="left")
    frame = o.drop(columns=["sent_at", "product_id"]).merge(
        _features(warehouse), on=["subscriber_id", "as_of"], how="inner")
    if frame.empty:
        raise WarehouseError("no offer matches a feature build (features are joined on the "
                             "first day of the month the offer was sent)")
    return frame


def train(warehouse: Warehouse, *, model: str, models_dir: Path,
          seed: int = 0) -> tabular.Trained:
    """Train the ``churn`` or ``response`` model on the warehouse and save it."""
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    frame = churn_frame(warehouse) if model == "churn" else response_frame(warehouse)
    label = "churned_3m" if model == "churn" else "responded"
    trained = tabular.fit(frame, label=label, time_column="as_of", exclude=NOT_FEATURES,
                          seed=seed, where=f"{model} training rows")
    tabular.save(trained, models_dir / f"{model}.joblib")
    return trained


def score(warehouse: Warehouse, *, model: str, models_dir: Path,
          as_of: dt.date | None = None) -> int:
    """Score every subscriber of the feature build ``as_of`` (latest by default) and store
    the rows in ``scores``; return how many."""
    import ibis

    from jingxin.audience.compile import features_as_of
    from jingxin.audience.store import replace_partition

    trained = tabular.load(models_dir / f"{model}.joblib")
    day = features_as_of(warehouse, as_of)
    f = _features(warehouse)
    f = f[f["as_of"] == day]
    if model == "response" and "category" in trained.categorical and "category" not in f:
        f["category"] = pd.NA  # scored for "an offer", whatever the product
    out = pd.DataFrame({"subscriber_id": f["subscriber_id"].astype("int64"),
                        "as_of": day, "model": model,
                        "score": trained.score(f).round(5)})
    expr = ibis.memtable(out)
    expr = expr.mutate(as_of=expr.as_of.cast("date"))
    return replace_partition(warehouse, table="scores", expr=expr, key="as_of", value=day,
                             model=model)


def feature_names() -> list[str]:
    return [c for c in FEATURES.names if c not in NOT_FEATURES]

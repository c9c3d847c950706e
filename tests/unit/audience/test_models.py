"""Propensity (generic CSV and warehouse labels), clusters and cross-sell rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import tiny

from jingxin.audience import propensity, tabular
from jingxin.audience.clusters import cluster
from jingxin.audience.crosssell import rules
from jingxin.errors import InputError, WarehouseError


def churn_csv(n: int = 240, seed: int = 1) -> pd.DataFrame:
    """A hand-made operator export: churn follows service calls and an international plan."""
    rng = np.random.default_rng(seed)
    calls = rng.integers(0, 8, n)
    intl = rng.choice(["yes", "no"], n, p=[0.2, 0.8])
    minutes = rng.normal(180, 50, n).round(1)
    risk = 0.6 * calls + 1.5 * (intl == "yes") + 0.01 * (minutes - 180) - 2.5
    churn = rng.random(n) < 1 / (1 + np.exp(-risk))
    return pd.DataFrame({"Phone": [f"{i:07d}" for i in range(n)], "State": rng.choice(
        ["KS", "OH", "NJ"], n), "Intl plan": intl, "Day minutes": minutes,
        "Service calls": calls, "Churn": np.where(churn, "True", "False")})


def test_tabular_path_learns_and_reports():
    trained = tabular.fit(churn_csv(), label="Churn", where="t.csv")
    assert trained.auc > 0.7
    assert trained.holdout.startswith("stratified")
    assert "Phone" in trained.dropped  # an identifier, not a feature
    top = [name for name, _ in trained.importance[:2]]
    assert "Service calls" in top


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (churn_csv().drop(columns=["Churn"]), "no label column 'Churn'"),
        (churn_csv().assign(Churn="maybe"), "label value 'maybe'"),
        (churn_csv().assign(Churn="False"), "at least 6 rows of each class"),
    ],
)
def test_tabular_label_errors(frame, message):
    with pytest.raises(InputError, match=message):
        tabular.fit(frame, label="Churn", where="t.csv")


@pytest.fixture(scope="module")
def labelled():
    """A quick numpy warehouse with features as of May, June and July 2024."""
    from jingxin.audience.features import build_features
    from jingxin.audience.quickevents import load, warehouse_tables
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(":memory:")
    load(wh, warehouse_tables(600, seed=3, events_days=1, events_per_day=6))
    for month in (5, 6, 7):
        build_features(wh, as_of=dt.date(2024, month, 1))
    return wh


def test_churn_model_time_holdout_save_and_score(labelled, tmp_path):
    trained = propensity.train(labelled, model="churn", models_dir=tmp_path)
    assert trained.holdout == "time-based: test = as_of 2024-06-01"
    assert trained.auc > 0.6
    assert (tmp_path / "churn.joblib").exists()
    n = propensity.score(labelled, model="churn", models_dir=tmp_path)
    scores = labelled.table("scores").to_pandas()
    assert n == 600 and scores["score"].between(0, 1).all()
    assert set(scores["as_of"].astype(str)) == {"2024-07-01"}


def test_response_model(labelled, tmp_path):
    trained = propensity.train(labelled, model="response", models_dir=tmp_path)
    assert "category" in trained.categorical
    assert 0 <= trained.auc <= 1


def test_labels_missing_name_the_table(featured_shared, tmp_path):
    featured_shared.con.drop_table("churn_labels")
    with pytest.raises(WarehouseError, match="'churn_labels' is missing"):
        propensity.train(featured_shared, model="churn", models_dir=tmp_path)
    featured_shared.con.create_table("churn_labels", tiny.tables()["churn_labels"])


def test_clusters_profile(labelled):
    result = cluster(labelled, k=3)
    assert result.profile["size"].sum() == 600 and len(result.profile) == 3
    assert set(result.assignments["cluster"]) == {0, 1, 2}
    assert {"dominant_plan", "dominant_tenure", "arpu"} <= set(result.profile.columns)
    chosen = cluster(labelled)
    assert 2 <= chosen.k <= 8 and chosen.silhouette is not None


def test_crosssell_rules_on_tiny_holdings(featured_shared):
    r = rules(featured_shared, as_of=tiny.AS_OF, min_support=0.2, min_confidence=0.5)
    row = r[(r.antecedents == "TV") & (r.consequents == "BB")].iloc[0]
    # TV holders on 2024-07-01: 1, 2, 3 (5's ended in January); all hold BB; BB: 4 of 5
    assert (row.support, row.confidence, row.lift) == pytest.approx((0.6, 1.0, 1.25))
    assert row.sentence == "持有IPTV的用户中100%也办理了宽带（提升度1.25）"


def test_crosssell_finds_the_planted_pair(labelled):
    r = rules(labelled, as_of=dt.date(2024, 7, 1), min_support=0.02, min_lift=1.5)
    pairs = set(zip(r.antecedents, r.consequents))
    assert ("BB", "TV") in pairs and ("TV", "BB") in pairs

"""The label models: a known ceiling, and labels that follow observable features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from jingxin.data.synth import SynthParams, synthesize
from jingxin.data.synth.labels import Oracle


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    synthesize(params=SynthParams(subscribers=20_000, seed=11, location_subscribers=0,
                                  cells=500), out=out)
    read = lambda name: pq.read_table(out / f"{name}.parquet").to_pandas()
    return json.loads((out / "synth.json").read_text()), read


def test_oracle_auc_is_a_ceiling_in_the_documented_band(labelled):
    manifest, _ = labelled
    assert 0.74 <= manifest["churn"]["oracle_auc"] <= 0.86
    assert 0.03 <= manifest["churn"]["rate"] <= 0.12
    assert 0.72 <= manifest["offers"]["oracle_auc"] <= 0.88
    assert 0.04 <= manifest["offers"]["response_rate"] <= 0.2


def rate(labels: pd.DataFrame, mask: pd.Series) -> float:
    return labels.churned_3m[mask.reindex(labels.index, fill_value=False)].mean()


def test_churn_follows_observable_features(labelled):
    _, read = labelled
    subs = read("subscribers").set_index("subscriber_id")
    labels = read("churn_labels").set_index("subscriber_id")
    usage = read("usage_monthly")
    s = subs.reindex(labels.index)
    tenure = (pd.Timestamp("2026-10-01") - pd.to_datetime(s.entry_date)).dt.days
    wide = usage.pivot(index="subscriber_id", columns="month", values="data_mb")
    months = sorted(wide.columns)
    drop = wide[months[-1]] <= 0.5 * wide[months[2:5]].mean(axis=1)
    cases = [
        (s.status == "double_stop", s.status == "active"),
        (tenure < 183, tenure > 5 * 365),
        (s.payment == "prepaid", s.payment == "postpaid"),
        (drop, ~drop),
    ]
    for risky, safe in cases:
        assert rate(labels, risky) > 1.3 * rate(labels, safe)
    complained = read("complaints").query("category != 'marketing_sms'").subscriber_id.unique()
    assert rate(labels, pd.Series(labels.index.isin(complained), labels.index)) > rate(
        labels, pd.Series(~labels.index.isin(complained), labels.index))
    churned = labels[labels.churned_3m]
    assert (churned.churn_date >= churned.as_of).all()
    assert labels[~labels.churned_3m].churn_date.isna().all()
    # The already churned carry no label
    assert not labels.index.isin(subs.index[subs.status == "churned"]).any()


def test_data_heavy_users_take_data_packs(labelled):
    _, read = labelled
    usage, plans = read("usage_monthly"), read("plans")
    offers = read("offers")
    u = usage.merge(plans[["plan_id", "data_mb"]].rename(columns={"data_mb": "allow"}))
    over = (u.data_mb > u.allow).groupby(u.subscriber_id).mean() > 0.5
    packs = offers[offers.product_id.str.startswith("DP-")].set_index("subscriber_id")
    heavy = over.reindex(packs.index, fill_value=False)
    assert packs.responded[heavy].mean() > 2 * packs.responded[~heavy].mean()
    took = offers[offers.responded]
    assert (took.responded_at > took.sent_at).all()
    assert offers[~offers.responded].responded_at.isna().all()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.05, 0.5))
def test_histogram_auc_matches_sklearn(seed, rate):
    # Given probabilities and labels drawn from them
    rng = np.random.default_rng(seed)
    p = rng.beta(1.0, 1.0 / rate, 3_000)
    y = rng.random(3_000) < p
    if y.all() or not y.any():
        return
    # When the oracle accumulates them in two halves
    oracle = Oracle()
    oracle.add(p[:1_000], y[:1_000])
    oracle.add(p[1_000:], y[1_000:])
    # Then its AUC is sklearn's to within the histogram's resolution
    assert oracle.auc == pytest.approx(roc_auc_score(y, p), abs=2e-3)
    assert oracle.rate == pytest.approx(y.mean())

"""Per-subscriber reasons for a churn score: the top contributions as (feature, value,
contribution), as text and back, for one number of the warehouse (``jingxin why``) and
kept with each double-stop work order."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import tiny

from jingxin.audience import tabular, trust
from jingxin.audience.reasons import (
    Reason,
    explain_number,
    format_reasons,
    parse_reasons,
    top_reasons,
)

FEATURES = ["arpu", "complaint_count", "tenure_months"]


def churn_model(reference: bool = True) -> tabular.Trained:
    """A hand-made linear churn model: complaints raise the risk, spending lowers it,
    tenure does nothing."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"arpu": rng.uniform(10, 100, 400),
                      "complaint_count": rng.poisson(0.5, 400).astype(float),
                      "tenure_months": rng.uniform(1, 120, 400)})
    risk = 1.5 * x["complaint_count"] - 0.02 * x["arpu"]
    y = rng.random(400) < 1 / (1 + np.exp(-risk))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    ref = trust.Reference.of(x, numeric=FEATURES, categorical=[]) if reference else None
    return tabular.Trained(model=model, label="churned_3m", numeric=FEATURES, categorical=[],
                           auc=0.8, holdout="hand-made", train_rows=400, test_rows=0,
                           reference=ref)


def test_top_reasons_name_feature_value_and_contribution() -> None:
    trained = churn_model()
    ref = trained.reference.mean
    rows = pd.DataFrame({"arpu": [12.0, ref["arpu"]], "complaint_count": [4.0, ref[
        "complaint_count"]], "tenure_months": [60.0, ref["tenure_months"]]})
    first, typical = top_reasons(trained, rows)
    # Complaints first, then the low spend; tenure does not matter
    assert [r.feature for r in first[:2]] == ["complaint_count", "arpu"]
    assert first[0].value == "4" and first[0].contribution > 0.5
    assert first[1].value == "12" and first[1].contribution > 0
    assert all(r.feature != "tenure_months" or abs(r.contribution) < 0.1 for r in first)
    # A subscriber at the typical values has no reason at all
    assert typical == ()
    # And the text form reads back
    text = format_reasons(first)
    assert text.startswith("complaint_count=4 (+")
    assert parse_reasons(text) == [Reason(r.feature, r.value, round(r.contribution, 3))
                                   for r in first]
    assert parse_reasons(None) == [] and parse_reasons("free text") == []


def test_explain_one_number_of_the_warehouse(featured_shared) -> None:
    trained = churn_model()
    # Subscriber 4 complains and spends little
    got = explain_number(featured_shared, trained, "+8613800000004")
    assert got.subscriber_id == 4 and got.as_of == tiny.AS_OF and 0 < got.score < 1
    assert got.reasons[0].feature == "complaint_count" and got.reasons[0].contribution > 0
    assert got.unit == "log-odds"
    # A number not in the warehouse, and one who joined after the build, have no row
    assert explain_number(featured_shared, trained, "+8613800000099") is None
    assert explain_number(featured_shared, trained, "+8613800000006") is None
    # A model saved without a reference is explained against the build's rows
    old = explain_number(featured_shared, churn_model(reference=False), "+8613800000004")
    assert old.reasons and old.reasons[0].feature == "complaint_count"


@pytest.fixture
def barred(tmp_path):
    """The tiny warehouse with subscribers 1 and 4 prepaid and double-stopped since June."""
    from jingxin.audience.features import build_features
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(":memory:")
    tables = tiny.tables()
    subs = tables["subscribers"]
    chosen = pc.is_in(subs["subscriber_id"], pa.array([1, 4], pa.int64()))
    subs = subs.set_column(subs.schema.get_field_index("payment"), "payment",
                           pc.if_else(chosen, "prepaid", subs["payment"]))
    subs = subs.set_column(subs.schema.get_field_index("status"), "status",
                           pc.if_else(chosen, "double_stop", subs["status"]))
    since = pa.array([dt.date(2024, 6, 20) if c else None for c in chosen.to_pylist()],
                     pa.date32())
    subs = subs.set_column(subs.schema.get_field_index("suspended_since"),
                           "suspended_since", since)
    tables["subscribers"] = subs
    for name, table in tables.items():
        wh.con.create_table(name, table, overwrite=True)
    build_features(wh, as_of=tiny.AS_OF)
    yield wh
    wh.close()


def test_work_orders_keep_the_top_reasons(barred, tmp_path, migrated_sqlite) -> None:
    from jingxin.config import RetentionSettings, Settings
    from jingxin.data.store import open_store
    from jingxin.retention import extract
    from jingxin.retention.workorders import list_orders, order_events, order_reasons

    settings = Settings(home=tmp_path, retention=RetentionSettings(double_stop_days=7))
    tabular.save(churn_model(), settings.var_dir() / "models" / "churn.joblib")
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        # When the day's orders are extracted with a churn model
        report = extract(settings, store, barred, day=dt.date(2024, 7, 10))
        assert report.created == 2 and report.scored == 2
        orders = {o.subscriber_id: o for o in list_orders(store)}
        reasons = order_reasons(store, [o.id for o in orders.values()])
        # Then each order keeps its score's top reasons, 4's led by its complaints
        four = reasons[orders[4].id]
        assert 1 <= len(four) <= 3 and four[0].feature == "complaint_count"
        assert four[0].value == "2" and four[0].contribution > 0
        assert reasons[orders[1].id]
        # In the created event's note, on a line of their own
        note = order_events(store, orders[4].id)[0].note
        assert note.splitlines()[0] == "double-stopped since 2024-06-20, 7+ days on 2024-07-10"
        assert note.splitlines()[1].startswith("churn reasons: complaint_count=2 (+")
    finally:
        store.dispose()

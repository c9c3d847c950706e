"""The daily double-stop extraction on a tiny hand-made warehouse whose answers are known
by hand, on SQLite and PostgreSQL.

Day D = 2026-03-10, threshold 7 days (barred on or before 2026-03-03):

id  payment   status       suspended_since  region   → on D
1   prepaid   double_stop  2026-03-03       浦东新区  order (exactly 7 days), 浦东分公司
2   prepaid   double_stop  2026-03-04       浦东新区  none (6 days)
3   postpaid  double_stop  2026-02-01       浦东新区  none (postpaid)
4   prepaid   active       -                闵行区    none
5   prepaid   double_stop  -                闵行区    none, skipped: cannot be dated
6   prepaid   double_stop  2026-01-15       徐汇区    order, 客户服务中心 (no branch for 徐汇)
7   prepaid   suspended    2026-01-01       浦东新区  none (one-way barring)
8   prepaid   double_stop  2026-02-20       闵行区    order, 闵行分公司
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from jingxin.config import RetentionSettings, Settings
from jingxin.data.store import open_store
from jingxin.data.store.models.journeys import WorkOrder, WorkOrderEvent
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.retention import extract, list_orders
from jingxin.retention.workorders import order_events

D = dt.date(2026, 3, 10)
BRANCHES = {"浦东新区": "浦东分公司", "闵行区": "闵行分公司"}
SUBSCRIBERS = [  # id, payment, status, suspended_since, region
    (1, "prepaid", "double_stop", dt.date(2026, 3, 3), "浦东新区"),
    (2, "prepaid", "double_stop", dt.date(2026, 3, 4), "浦东新区"),
    (3, "postpaid", "double_stop", dt.date(2026, 2, 1), "浦东新区"),
    (4, "prepaid", "active", None, "闵行区"),
    (5, "prepaid", "double_stop", None, "闵行区"),
    (6, "prepaid", "double_stop", dt.date(2026, 1, 15), "徐汇区"),
    (7, "prepaid", "suspended", dt.date(2026, 1, 1), "浦东新区"),
    (8, "prepaid", "double_stop", dt.date(2026, 2, 20), "闵行区"),
]


def subscribers(rows=SUBSCRIBERS) -> pa.Table:
    """The rows above in the warehouse contract's columns (the rest plain and fixed)."""
    schema = TABLES["subscribers"].schema
    n = len(rows)
    data = {
        "subscriber_id": [r[0] for r in rows],
        "msisdn": [f"+86138000000{r[0]:02d}" for r in rows],
        "carrier": ["china_mobile"] * n, "plan_id": ["P1"] * n,
        "payment": [r[1] for r in rows], "status": [r[2] for r in rows],
        "gender": ["F"] * n, "birthday": [dt.date(1990, 1, 1)] * n,
        "entry_date": [dt.date(2020, 1, 1)] * n, "contract_end": [None] * n,
        "star_level": [2] * n, "region": [r[4] for r in rows],
        "handset_model": ["Mate 60"] * n, "handset_generation": [5] * n,
        "app_user": [False] * n, "suspended_since": [r[3] for r in rows],
    }
    return pa.table({f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema)


def put(wh, rows) -> None:
    wh.con.create_table("subscribers", subscribers(rows), overwrite=True)


def change(wh, subscriber_id: int, **values) -> None:
    """Rewrite one subscriber's status / suspended_since, as tomorrow's warehouse load would."""
    rows = [r for r in current(wh)]
    rows = [(i, p, values.get("status", s), values.get("since", since), reg)
            if i == subscriber_id else (i, p, s, since, reg) for i, p, s, since, reg in rows]
    put(wh, rows)


def current(wh) -> list[tuple]:
    t = wh.table("subscribers").order_by("subscriber_id").to_pyarrow().to_pylist()
    return [(r["subscriber_id"], r["payment"], r["status"], r["suspended_since"], r["region"])
            for r in t]


@pytest.fixture
def wh():
    warehouse = open_duckdb(":memory:")
    put(warehouse, SUBSCRIBERS)
    yield warehouse
    warehouse.close()


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, retention=RetentionSettings(
        double_stop_days=7, branches=BRANCHES, default_branch="客户服务中心"))


def orders(store) -> list[WorkOrder]:
    with store.transaction() as session:
        return list(session.scalars(select(WorkOrder).order_by(WorkOrder.subscriber_id,
                                                               WorkOrder.episode)))


def count_events(store) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count(WorkOrderEvent.id)))


def test_extracts_exactly_the_prepaid_barred_seven_days_or_more(settings, store, wh) -> None:
    # When D is extracted
    report = extract(settings, store, wh, day=D)
    # Then 1 (7 days), 6 and 8 get an order; 2 (6 days), postpaid 3, active 4 and
    # one-way 7 none; 5 is skipped as undatable
    assert (report.candidates, report.created, report.existing) == (3, 3, 0)
    assert report.skipped == {"double_stop without suspended_since": 1}
    got = orders(store)
    assert [(o.subscriber_id, o.episode, o.branch, o.state) for o in got] == [
        (1, "2026-03-03", "浦东分公司", "created"),
        (6, "2026-01-15", "客户服务中心", "created"),
        (8, "2026-02-20", "闵行分公司", "created"),
    ]
    assert {o.barred_since for o in got} == {dt.date(2026, 3, 3), dt.date(2026, 1, 15),
                                             dt.date(2026, 2, 20)}
    assert all(o.extracted_on == D and o.kind == "double_stop" for o in got)
    assert report.by_branch == {"客户服务中心": 1, "浦东分公司": 1, "闵行分公司": 1}
    assert report.branched_by == {"default": 1, "region": 2}
    # And each order has its one 'created' event by the system
    events = order_events(store, got[0].id)
    assert [(e.state, e.by) for e in events] == [("created", "system")]
    # And without a trained model there is no propensity, and the report says why
    assert report.scored == 0 and all(o.propensity is None for o in got)
    assert "no churn model" in report.propensity_note
    assert "train-churn" in report.propensity_note


def test_six_days_is_not_enough_until_the_next_day(settings, store, wh) -> None:
    extract(settings, store, wh, day=D)
    # When the next day is extracted: 2 has now been barred 7 days
    report = extract(settings, store, wh, day=D + dt.timedelta(days=1))
    assert (report.candidates, report.created, report.existing) == (4, 1, 3)
    assert [o.subscriber_id for o in orders(store)] == [1, 2, 6, 8]


def test_re_extraction_creates_no_duplicate(settings, store, wh) -> None:
    first = extract(settings, store, wh, day=D)
    # When the same day runs again (a retry, a second scheduler tick)
    again = extract(settings, store, wh, day=D)
    # Then nothing new: the same three orders, three created events
    assert (first.created, again.created, again.existing) == (3, 0, 3)
    assert len(orders(store)) == 3 and count_events(store) == 3


def test_a_later_barring_is_a_new_order(settings, store, wh) -> None:
    extract(settings, store, wh, day=D)
    # Given subscriber 1 tops up (the warehouse shows active): the system closes the order
    change(wh, 1, status="active", since=None)
    report = extract(settings, store, wh, day=dt.date(2026, 3, 12))
    # (the one new order is 2's: barred 8 days by now)
    assert (report.reactivated, report.lost, report.created) == (1, 0, 1)
    first = next(o for o in orders(store) if o.subscriber_id == 1)
    assert first.state == "reactivated"
    assert [(e.state, e.by) for e in order_events(store, first.id)] == [
        ("created", "system"), ("reactivated", "system")]
    # When 1 is double-stopped again from 2026-03-20 and 7 days pass
    change(wh, 1, status="double_stop", since=dt.date(2026, 3, 20))
    report = extract(settings, store, wh, day=dt.date(2026, 3, 27))
    # Then a second order for the new episode; the first stays reactivated
    assert report.created == 1
    mine = [(o.episode, o.state) for o in orders(store) if o.subscriber_id == 1]
    assert mine == [("2026-03-03", "reactivated"), ("2026-03-20", "created")]


def test_only_active_or_churned_close_an_open_order(settings, store, wh) -> None:
    extract(settings, store, wh, day=D)
    # Given 6 churned, 8 now only one-way suspended (1 still double-stopped)
    change(wh, 6, status="churned")
    change(wh, 8, status="suspended")
    report = extract(settings, store, wh, day=D + dt.timedelta(days=1))
    # Then 6 is lost by the system; 8 and 1 stay open for their branch (2 is new today)
    assert (report.reactivated, report.lost) == (0, 1)
    states = {o.subscriber_id: o.state for o in orders(store)}
    assert states == {1: "created", 2: "created", 6: "lost", 8: "created"}


def features(rows: list[tuple[int, str | None, float]], as_of: dt.date) -> pa.Table:
    """A hand-made feature build: the home district and one behaviour column (arpu)."""
    return pa.table({"subscriber_id": pa.array([r[0] for r in rows], pa.int64()),
                     "as_of": pa.array([as_of] * len(rows), pa.date32()),
                     "arpu": pa.array([r[2] for r in rows], pa.float64()),
                     "home_district": pa.array([r[1] for r in rows], pa.string())})


def test_the_home_district_decides_the_branch(settings, store, wh) -> None:
    # Given a feature build before D: 6 lives in 闵行区 (billed in 徐汇区), 1's home is a
    # district no branch covers (so its region decides), 8 is not in the build
    wh.con.create_table("features", features(
        [(1, "昆山市", 30.0), (6, "闵行区", 12.0)], dt.date(2026, 3, 1)))
    # And a later build (after D) that must not be read
    wh.con.insert("features", features([(6, "浦东新区", 12.0)], dt.date(2026, 4, 1)))
    report = extract(settings, store, wh, day=D)
    assert report.feature_build == dt.date(2026, 3, 1)
    branches = {o.subscriber_id: o.branch for o in orders(store)}
    assert branches == {1: "浦东分公司", 6: "闵行分公司", 8: "闵行分公司"}
    assert report.branched_by == {"home": 1, "region": 2}


def train_churn_model(path) -> object:
    """A hand-made churn model on arpu (low spenders churn), saved where train-churn
    saves it: the extraction must use it, never train one."""
    from sklearn.linear_model import LogisticRegression

    from jingxin.audience import tabular

    arpu = np.array([5, 8, 10, 12, 15, 18, 40, 45, 50, 60, 70, 80], dtype=float)
    model = LogisticRegression().fit(pd.DataFrame({"arpu": arpu}), arpu < 20)
    trained = tabular.Trained(model=model, label="churned_3m", numeric=["arpu"],
                              categorical=[], auc=1.0, holdout="hand-made", train_rows=12,
                              test_rows=0)
    tabular.save(trained, path)
    return trained


def test_orders_carry_the_churn_propensity(settings, store, wh) -> None:
    # Given a trained churn model and a feature build without subscriber 8
    trained = train_churn_model(settings.var_dir() / "models" / "churn.joblib")
    wh.con.create_table("features", features(
        [(1, None, 30.0), (6, None, 12.0)], dt.date(2026, 3, 1)))
    report = extract(settings, store, wh, day=D)
    # Then 1 and 6 carry the model's score on their own feature row, 8 none (and why)
    expected = trained.score(pd.DataFrame({"arpu": [30.0, 12.0]})).round(5)
    got = {o.subscriber_id: o.propensity for o in orders(store)}
    assert got[1] == pytest.approx(expected[0]) and got[6] == pytest.approx(expected[1])
    assert got[8] is None
    assert report.scored == 2
    assert report.propensity_note.startswith("1 of 3 candidates are not in the feature build")
    # And the worklist puts the riskiest first (6 spends least), unscored last
    assert [o.subscriber_id for o in list_orders(store)] == [6, 1, 8]


def test_a_model_without_a_feature_build_scores_nothing(settings, store, wh) -> None:
    train_churn_model(settings.var_dir() / "models" / "churn.joblib")
    report = extract(settings, store, wh, day=D)
    assert report.scored == 0
    assert "no feature build on or before 2026-03-10" in report.propensity_note


def test_orders_go_in_chunks(settings, store, wh, monkeypatch) -> None:
    # Given chunks of two orders: three orders take two transactions
    import jingxin.retention.double_stop as double_stop

    monkeypatch.setattr(double_stop, "CHUNK", 2)
    report = extract(settings, store, wh, day=D)
    assert report.created == 3 and count_events(store) == 3
    assert extract(settings, store, wh, day=D).created == 0

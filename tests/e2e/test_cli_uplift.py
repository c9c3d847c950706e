"""``jingxin audience train-uplift`` / ``score-uplift``, ``jingxin why`` with the churn
score's reasons and ``jingxin retention show`` end to end, on a small DuckDB warehouse
(400 subscribers, features as of 2024-07-01) and a SQLite store whose experiment
assignments and order events are inserted directly.

Campaign 7: every third subscriber held out; app users order far more often when
treated (persuadable), everyone else at the base rate; five assigned numbers are not in
the warehouse. Campaign 8 has no hold-out; campaign 9's hold-out has 40 subscribers.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import InputError

TOML = """[store]
url = "sqlite:///uplift.db"

[warehouse]
path = "wh.duckdb"

[retention]
double_stop_days = 7
"""
AT = dt.datetime(2024, 7, 6, 10, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def base_warehouse(tmp_path_factory) -> Path:
    from jingxin.audience.features import build_features
    from jingxin.audience.quickevents import load, warehouse_tables
    from jingxin.data.warehouse.connection import open_duckdb

    path = tmp_path_factory.mktemp("uplift") / "base.duckdb"
    wh = open_duckdb(path)
    load(wh, warehouse_tables(400, seed=3, events_days=0))
    build_features(wh, as_of=dt.date(2024, 7, 1))
    wh.close()
    return path


@pytest.fixture
def cli(tmp_path, monkeypatch, base_warehouse):
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(TOML, encoding="utf-8")
    shutil.copy(base_warehouse, tmp_path / "wh.duckdb")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def _ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def _refused(done) -> str:
    assert isinstance(done.exception, InputError), f"{done.output}\n{done.exception!r}"
    return str(done.exception)


def number(i: int) -> str:
    return f"+86138{i:08d}"


def campaign(campaign_id: int, *, held_out, ordered, extra: int = 0) -> None:
    """Assign subscribers 1..400 (+ ``extra`` unknown numbers) to the campaign; the
    ``held_out`` ones to the hold-out; an ``ordered`` event for each that ordered."""
    from jingxin.data.store import open_store
    from jingxin.data.store.models.analytics import AnalyticsEvent, ExperimentAssignment
    from jingxin.data.store.models.content import Campaign

    people = [number(i) for i in range(1, 401)] + [f"+86139999{i:05d}" for i in range(extra)]
    store = open_store("sqlite:///uplift.db", upgrade=True)
    try:
        with store.transaction() as session:
            session.add(Campaign(id=campaign_id, tenant_id="operator", name=f"c{campaign_id}",
                                 category="marketing", status="finished", started_at=AT))
            for i, msisdn in enumerate(people, start=1):
                hold = i <= 400 and bool(held_out[i - 1])
                arm = "holdout" if hold else "main"
                session.add(ExperimentAssignment(
                    experiment=f"campaign:{campaign_id}", msisdn=msisdn, arm=arm,
                    holdout=hold, tenant_id="operator", assigned_at=AT))
                if i <= 400 and ordered[i - 1]:
                    session.add(AnalyticsEvent(
                        event_key=f"ordered:c{campaign_id}:{i}", kind="ordered", at=AT,
                        msisdn=msisdn, tenant_id="operator", source="campaign",
                        source_id=str(campaign_id), campaign_id=campaign_id, arm=arm,
                        value=10.0))
    finally:
        store.dispose()


def app_users(path: Path) -> np.ndarray:
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(path, read_only=True)
    try:
        t = wh.table("subscribers").order_by("subscriber_id").to_pyarrow()
    finally:
        wh.close()
    return np.asarray(t.column("app_user").to_pylist(), bool)


def test_train_and_score_uplift(cli, tmp_path) -> None:
    # Given campaign 7: a third held out, app users persuadable
    rng = np.random.default_rng(1)
    held = np.arange(1, 401) % 3 == 0
    persuadable = app_users(tmp_path / "wh.duckdb")
    ordered = rng.random(400) < 0.08 + 0.45 * (~held & persuadable)
    campaign(7, held_out=held, ordered=ordered, extra=5)
    # When an uplift model is trained on it
    out = _ok(cli("audience", "train-uplift", "--campaign", "7", "--out", "m.joblib",
                  "--score-out", "s.csv", "--chart", "q.html"))
    # Then both groups, the observed uplift, Qini and AUUC vs random, the top decile show
    assert (f"campaign:7: {400 - held.sum()} treated, {held.sum()} held out (control); "
            "outcome 'ordered'; features as of 2024-07-01") in out
    assert "5 of 405 assigned subscribers are not in the feature build" in out
    assert "observed: treated" in out and "uplift +" in out
    assert "test part: 120 (" in out and "Qini coefficient" in out
    assert "(random ordering: 0.000; optimum: 1)" in out
    assert "AUUC" in out and "top 10% by predicted uplift" in out
    assert "model saved to m.joblib" in out
    scores = (tmp_path / "s.csv").read_text().splitlines()
    assert scores[0] == "msisdn,subscriber_id,treated,ordered,test,uplift"
    assert len(scores) == 401
    html = (tmp_path / "q.html").read_text(encoding="utf-8")
    assert "Qini curve: campaign 7" in html and '<script src="https://cdn' not in html
    # And the model scores the whole warehouse, persuadable first
    out = _ok(cli("audience", "score-uplift", "m.joblib", "--out", "all.csv"))
    assert "scored 400 subscribers (features as of 2024-07-01) into all.csv" in out
    rows = (tmp_path / "all.csv").read_text().splitlines()
    assert rows[0] == "msisdn,subscriber_id,uplift" and len(rows) == 401
    top = [int(r.split(",")[1]) for r in rows[1:41]]
    assert persuadable[np.array(top) - 1].mean() > persuadable.mean()
    # And a segment only: the app users
    (tmp_path / "app.yaml").write_text("name: app\nwhere: {field: app_user, op: eq, "
                                       "value: true}\n", encoding="utf-8")
    out = _ok(cli("audience", "score-uplift", "m.joblib", "--out", "app.csv", "--spec",
                  "app.yaml"))
    assert f"scored {persuadable.sum()} subscribers" in out


def test_refuses_a_campaign_without_a_hold_out_or_with_a_small_group(cli) -> None:
    rng = np.random.default_rng(2)
    ordered = rng.random(400) < 0.2
    campaign(8, held_out=np.zeros(400, bool), ordered=ordered)
    assert "campaign 8 has no hold-out: all 400 assigned subscribers were treated" in (
        _refused(cli("audience", "train-uplift", "--campaign", "8")))
    campaign(9, held_out=np.arange(400) < 40, ordered=ordered)
    assert _refused(cli("audience", "train-uplift", "--campaign", "9")) == (
        "campaign 9: the hold-out (control) group has 40 subscribers; an uplift model "
        "needs at least 50 in each group")
    assert "--outcome 'bought'" in _refused(
        cli("audience", "train-uplift", "--campaign", "9", "--outcome", "bought"))
    assert "unknown experiment" in _refused(cli("audience", "train-uplift", "--campaign",
                                                "10"))


def save_churn_model(path: Path) -> None:
    """A hand-made churn model on the warehouse features (low spenders, complainers)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from jingxin.audience import tabular, trust
    from jingxin.audience.subscriber_rows import feature_rows
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(Path("wh.duckdb"), read_only=True)
    try:
        x = feature_rows(wh).frame[["arpu", "complaint_count"]].astype(float)
    finally:
        wh.close()
    y = (x["arpu"] < x["arpu"].median()) | (x["complaint_count"] > 0)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    tabular.save(tabular.Trained(
        model=model, label="churned_3m", numeric=["arpu", "complaint_count"], categorical=[],
        auc=0.9, holdout="hand-made", train_rows=len(x), test_rows=0,
        reference=trust.Reference.of(x, numeric=["arpu", "complaint_count"],
                                     categorical=[])), path)


def test_why_prints_the_churn_score_and_its_reasons(cli, tmp_path) -> None:
    # Without a model, why says how to get one
    out = _ok(cli("why", number(4)))
    assert f"no decisions about {number(4)}" in out
    assert "no model trained: run jingxin audience train-churn" in out
    # With one, the number's score and its top reasons (feature, value, contribution)
    save_churn_model(tmp_path / "var" / "models" / "churn.joblib")
    out = _ok(cli("why", number(4)))
    assert "churn score 0." in out and "features as of 2024-07-01; subscriber 4)" in out
    assert "top reasons (contribution in log-odds):" in out
    assert "arpu" in out or "complaint_count" in out
    assert "not in the warehouse's latest feature build" in _ok(cli("why", "+8613999999999"))


def test_work_orders_show_their_reasons(cli, tmp_path) -> None:
    # Given subscribers 1 and 2 prepaid and double-stopped since June, and a churn model
    from jingxin.data.warehouse.connection import open_duckdb

    wh = open_duckdb(tmp_path / "wh.duckdb")
    wh.con.raw_sql("UPDATE subscribers SET payment = 'prepaid', status = 'double_stop', "
                   "suspended_since = DATE '2024-06-01' WHERE subscriber_id IN (1, 2)")
    wh.close()
    save_churn_model(tmp_path / "var" / "models" / "churn.joblib")
    # When the day is extracted
    _ok(cli("retention", "extract", "--date", "2024-07-10"))
    # Then the worklist and one order show the score's top reasons
    orders = json.loads(_ok(cli("retention", "orders", "--json")))
    assert len(orders) == 2 and all(o["reasons"] for o in orders)
    first = orders[0]["reasons"][0]
    assert set(first) == {"feature", "value", "contribution"}
    assert first["feature"] in ("arpu", "complaint_count")
    table = _ok(cli("retention", "orders"))
    assert "top reasons" in table and f"{first['feature']}={first['value']}" in table
    shown = _ok(cli("retention", "show", str(orders[0]["id"])))
    assert "top reasons for the score" in shown and first["feature"] in shown
    assert "double-stopped since 2024-06-01" in shown and "churn reasons:" not in shown
    detail = json.loads(_ok(cli("retention", "show", str(orders[0]["id"]), "--json")))
    assert detail["reasons"] == orders[0]["reasons"] and detail["events"][0]["state"] == "created"
    assert "work order 99: no such order" in _refused(cli("retention", "show", "99"))

"""``jingxin events collect / list`` and ``jingxin experiment results`` end to end: the log
collected (twice: nothing new), listed with numbers masked, an experiment's arms against
its hold-out with incremental orders, an empty arm named, an experiment without a hold-out
told that uplift cannot be measured; bad input refused naming the argument."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from jingxin.analytics.events import record_events
from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.models import LANES, BossOrder, ExperimentAssignment, Message
from jingxin.errors import InputError

T0 = datetime.now(UTC) - timedelta(days=3)


def number(i: int) -> str:
    return f"+86139{i:08d}"


@pytest.fixture
def cli(tmp_path, migrated_sqlite, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_ANALYTICS__TARIFF"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text('[store]\nurl = "sqlite:///events.db"\n',
                                           encoding="utf-8")  # fmt: skip
    store = open_store(migrated_sqlite(tmp_path / "events.db"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    yield invoke, store
    store.dispose()


def seed(store) -> None:
    """campaign:7: arm A (numbers 1-20, all messaged, 6 order), a hold-out (21-40, 1
    orders); journey:welcome: arms A and B, no hold-out."""
    with store.transaction() as s:
        for i in range(1, 41):
            arm = "A" if i <= 20 else "holdout"
            s.add(ExperimentAssignment(experiment="campaign:7", msisdn=number(i), arm=arm,
                                       holdout=arm == "holdout", tenant_id="operator",
                                       assigned_at=T0))  # fmt: skip
            if arm == "A":
                s.add(Message(tenant_id="operator", campaign_id=7, msisdn=number(i),
                              category="marketing", lane=LANES["marketing"], text="offer",
                              idempotency_key=f"c7:{i}", source="campaign", source_id="7",
                              arm="A", state="delivered", created_at=T0, submitted_at=T0,
                              finished_at=T0 + timedelta(seconds=5)))  # fmt: skip
        for i in (*range(1, 7), 21):
            s.add(BossOrder(boss_ref=f"BO{i}", request_key=f"r{i}", msisdn=number(i),
                            product_id="P", fee_fen=1000, state="placed",
                            at=T0 + timedelta(days=1)))  # fmt: skip
        for i, arm in ((50, "A"), (51, "B")):
            s.add(ExperimentAssignment(experiment="journey:welcome", msisdn=number(i), arm=arm,
                                       tenant_id="operator", assigned_at=T0))  # fmt: skip
    # An arm nobody was assigned to: a reply to a message the outbox no longer has.
    record_events(store, [{"event_key": "replied:999", "kind": "replied", "at": T0,
                           "msisdn": number(99), "tenant_id": "operator",
                           "source": "campaign", "source_id": "7", "arm": "C"}])


def test_events_collect_and_list(cli):
    invoke, store = cli
    seed(store)
    done = invoke("events", "collect")
    assert done.exit_code == 0, done.output
    assert re.search(r"sent\s+│\s+20\s", done.output)
    assert re.search(r"held_out\s+│\s+20\s", done.output)
    again = invoke("events", "collect")
    assert again.exit_code == 0, again.output
    assert re.search(r"total\s+│\s+0\s", again.output)  # nothing new the second time
    listed = invoke("events", "list", "--campaign", "7", "--kind", "ordered", "--limit", "3")
    assert listed.exit_code == 0, listed.output
    assert "events: 3" in listed.output and "campaign:7" in listed.output
    assert "+861390000****" in listed.output and number(1) not in listed.output
    held = invoke("events", "list", "--experiment", "campaign:7", "--kind", "held_out")
    assert "events: 20" in held.output
    none = invoke("events", "list", "--kind", "complained")
    assert "no events match" in none.output


def test_experiment_results_against_the_holdout(cli):
    invoke, store = cli
    seed(store)
    shown = invoke("experiment", "results", "campaign", "7")
    assert shown.exit_code == 0, shown.output
    assert "campaign:7: subscribers per arm" in shown.output
    assert "control holdout (hold-out)" in shown.output and "incremental" in shown.output
    assert "arm C: no subscribers yet (n = 0), not compared" in shown.output
    as_json = invoke("experiment", "results", "campaign", "7", "--json")
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.output)
    assert (result["holdout"], result["uplift_measurable"], result["metric"]) \
        == ("holdout", True, "ordered")
    arms = {a["arm"]: a for a in result["comparison"]["arms"]}
    assert (arms["A"]["n"], arms["A"]["successes"]) == (20, 6)
    assert (arms["holdout"]["n"], arms["holdout"]["successes"]) == (20, 1)
    assert arms["A"]["incremental"]["successes"] == pytest.approx(5.0)
    assert result["comparison"]["empty"] == ["C"]


def test_experiment_results_without_a_holdout(cli):
    invoke, store = cli
    seed(store)
    shown = invoke("experiment", "results", "journey", "welcome", "--metric", "delivered")
    assert shown.exit_code == 0, shown.output
    assert "uplift is not measurable: journey:welcome has no hold-out" in shown.output
    assert "control A," in shown.output and "incremental (95% CI)" not in shown.output


@pytest.mark.parametrize("args, says", [
    (("campaign", "x7"), "campaign ID: 'x7' is not a campaign id"),
    (("segment", "7"), "'segment': say what ran the experiment"),
    (("campaign", "7", "--metric", "bought"), "--metric: 'bought'"),
])  # fmt: skip
def test_experiment_results_bad_input(args, says):
    # Refused before any store is opened
    done = CliRunner().invoke(app, ["experiment", "results", *args])
    assert isinstance(done.exception, InputError), done.output
    assert says in str(done.exception)


def test_experiment_results_unknown_experiment(cli):
    invoke, _ = cli
    done = invoke("experiment", "results", "campaign", "404")
    assert isinstance(done.exception, InputError), done.output
    assert "experiment campaign:404: no assignments and no messages" in str(done.exception)


def test_the_log_goes_to_the_warehouse_for_queries(cli, tmp_path):
    import duckdb

    invoke, store = cli
    seed(store)
    # When the log is collected and copied to a warehouse
    result = invoke("events", "collect", "--to-warehouse", "--warehouse", str(tmp_path / "wh.duckdb"))
    assert result.exit_code == 0, result.output
    # Then the warehouse table `events` holds the whole log, queryable as any table
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        kinds = dict(con.sql("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    finally:
        con.close()
    total = sum(kinds.values())
    assert f"warehouse table events: {total:,} events" in result.output
    assert kinds["ordered"] == 7 and kinds["held_out"] == 20

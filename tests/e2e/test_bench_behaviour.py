"""``jingxin bench behaviour``: the pure parts (the simulated clock's steps, the figures'
arithmetic), and the whole command at a tiny size (2,000 subscribers, 30-minute clock
steps: about 15 s), checking that every figure is there and that the campaigns really went
out on the simulated timeline. At this size the claims themselves are not testable (too
few orders); the benchmark's own run at 20,000 is recorded in BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from jingxin.bench.behaviour_clock import steps
from jingxin.bench.behaviour_figures import difference_of_uplifts, share

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 30, hour, minute, second, tzinfo=SHANGHAI).astimezone(dt.UTC)


def test_steps_end_just_before_each_boundary_so_no_message_changes_hour():
    # Given messages planned from 08:03 to 09:55, stepped by 30 minutes
    got = steps(at(8, 3), at(9, 55), 30)
    # Then each step ends a millisecond before a half hour, up to the one after the last
    ms = dt.timedelta(milliseconds=1)
    assert got == [at(8, 30) - ms, at(9, 0) - ms, at(9, 30) - ms, at(10, 0) - ms]
    # And a message due at 08:59:59 is sent at the step that ends in its own hour
    assert min(s for s in got if s >= at(8, 59, 59)).astimezone(SHANGHAI).hour == 8


def test_steps_of_one_instant_and_bad_steps():
    assert steps(at(10, 0), at(10, 0), 10) == [at(10, 10) - dt.timedelta(milliseconds=1)]
    with pytest.raises(ValueError, match="divide an hour"):
        steps(at(10, 0), at(11, 0), 7)


def test_share_and_difference_of_uplifts():
    assert share(0, 0)["rate"] is None
    one = share(30, 200)
    assert one["rate"] == 0.15 and one["ci"][0] < 0.15 < one["ci"][1]
    # Two uplifts whose 95% intervals are +-1.96 and +-3.92 points around 6 and 2 points
    a = {"incremental_rate": 0.06, "incremental_rate_ci": [0.0404, 0.0796]}
    b = {"incremental_rate": 0.02, "incremental_rate_ci": [-0.0192, 0.0592]}
    d = difference_of_uplifts(a, b)
    assert d["diff"] == pytest.approx(0.04)
    se = (0.01**2 + 0.02**2) ** 0.5
    assert d["ci"] == pytest.approx([0.04 - 1.96 * se, 0.04 + 1.96 * se], abs=1e-4)
    assert 0.05 < d["p"] < 0.1 and d["ratio"] == 3.0
    assert difference_of_uplifts(a, {"incremental_rate": None})["diff"] is None


@pytest.mark.slow
def test_bench_behaviour_runs_end_to_end_at_a_tiny_size(tmp_path, monkeypatch):
    from jingxin.cli import app

    # Given no settings of the user's (the benchmark points everything into --workdir)
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH",
                 "JINGXIN_CHANNELS", "JINGXIN_REDIS__URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "behaviour"
    # When the benchmark runs at 2,000 subscribers
    result = CliRunner().invoke(app, ["bench", "behaviour", "--subscribers", "2000",
                                      "--step-minutes", "30", "--workdir", str(workdir),
                                      "--no-record"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # Then it prints the table and ends with its JSON line
    assert "Simulated behaviour" in result.stdout
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "behaviour" and figures["subscribers"] == 2000
    assert "SIMULATION" in figures["simulation"]
    for side in ("targeted", "blast"):
        campaign = figures["targeting"][side]
        assert campaign["sent"] > 0 and campaign["held_out"] > 0
        assert 0 <= campaign["orders_per_sent"]["rate"] <= 1
        assert "incremental_rate" in campaign and "incremental_orders_ci" in campaign
    assert figures["targeting"]["targeted"]["audience"] == figures["targeting"]["blast"]["audience"]
    assert {"orders_per_sent_difference", "incremental_rate_difference",
            "targeted_wins"} <= set(figures["targeting"])  # fmt: skip
    send_time = figures["send_time"]
    assert send_time["learned"]["subscribers"] > 0
    arms = send_time["arms"]
    assert arms["best-time"]["assigned"] + arms["random-time"]["assigned"] == 2000
    for metric in ("responded", "clicked", "replied", "ordered"):
        assert set(send_time["comparisons"][metric]) >= {"diff", "ci", "p"}
    assert 0 <= arms["random-time"]["at_latent_peak"] <= 1
    assert set(send_time["by_history"]["best-time"]) == {"own_hours", "population_hour"}
    uplift = figures["uplift"]
    if not uplift.get("skipped"):  # a tiny hold-out may have too few orders to learn from
        assert set(uplift["models"]) == {"two-model", "transformed"}
        assert {"qini", "auuc", "auuc_random", "top_decile_uplift"} <= set(uplift["models"]["two-model"])
        fresh = uplift["fresh"]
        assert fresh["top_decile"]["audience"] == fresh["random_decile"]["audience"] == 200
        assert fresh["known"]["top_decile"] is not None
    # And every campaign went out on its simulated day, each message in its planned hour
    assert set(figures["campaigns"]) >= {"history", "send-time-split", "targeted", "blast"}
    history = figures["campaigns"]["history"]
    assert history["delivery"]["worker"]["receipts"] == history["queued"] > 0
    day = dt.date.fromisoformat(figures["days"][0])
    with sqlite3.connect(workdir / "world" / "store.db") as con:
        rows = con.execute("SELECT scheduled_at, submitted_at, state FROM messages "
                           "WHERE campaign_id = ?", (history["campaign_id"],)).fetchall()  # fmt: skip
    for scheduled, submitted, state in rows:
        planned, sent = (dt.datetime.fromisoformat(t).replace(tzinfo=dt.UTC).astimezone(SHANGHAI)
                         for t in (scheduled, submitted))  # fmt: skip
        assert state == "delivered" and sent.date() == day and 8 <= sent.hour < 21
        assert planned <= sent < planned + dt.timedelta(minutes=30)
        assert sent.hour == planned.hour

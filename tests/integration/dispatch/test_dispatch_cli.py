"""Through the ``jingxin`` command: campaign run → worker --once (to the simulator) →
campaign status, outbox stats; pause and cancel."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from jingxin.cli import app


def write_campaign(tmp_path, rows):
    (tmp_path / "audience.csv").write_text(
        "msisdn,name\n" + "".join(f"{m},{n}\n" for m, n in rows), encoding="utf-8"
    )
    spec = tmp_path / "spring.yaml"
    spec.write_text(
        "name: spring\ncategory: notification\n"
        "template:\n  body: '{{ name }}，您的账单已出。'\n  variables: {name: str}\n"
        "audience:\n  path: audience.csv\ntariff: 0.05\n",
        encoding="utf-8",
    )
    return spec


def test_campaign_to_delivery_through_the_cli(
    tmp_path, monkeypatch, simulator_port
) -> None:
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    monkeypatch.setenv(
        "JINGXIN_CHANNELS", json.dumps([{"name": "sim", "port": simulator_port}])
    )
    monkeypatch.setenv("JINGXIN_DISPATCH__WORKER_NAME", "cli-test")
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    runner = CliRunner()
    # Given an audience of 20 good numbers, one bad number and one duplicate
    rows = [(f"1390000{i:04d}", f"用户{i}") for i in range(20)] + [
        ("12345", "x"),
        ("13900000000", "dup"),
    ]
    spec = write_campaign(tmp_path, rows)
    # When the campaign runs
    result = runner.invoke(app, ["campaign", "run", str(spec)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    # Then 20 are accepted, the bad number is rejected, the duplicate is counted
    assert summary["rows"] == 22
    assert summary["accepted"] + summary["deferred"] == 20
    assert summary["rejected"] == {"invalid_number": 1, "duplicate": 1}
    assert summary["parts"] == 20 and summary["cost"] == pytest.approx(1.0)
    stats = runner.invoke(app, ["outbox", "stats"])
    assert "notification" in stats.output and "queued" in stats.output
    # When a worker drains the outbox once
    result = runner.invoke(app, ["worker", "--once", "--linger", "3"])
    assert result.exit_code == 0, result.output
    # Then the campaign's messages are delivered (those deferred by quiet hours stay queued)
    status = json.loads(
        runner.invoke(app, ["campaign", "status", str(summary["campaign_id"])]).output
    )
    assert status["messages"].get("delivered", 0) == summary["accepted"]
    assert status["messages"].get("queued", 0) == summary["deferred"]
    assert status["status"] == ("finished" if not summary["deferred"] else "running")


def test_pause_resume_cancel(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{tmp_path / 'jx.db'}")
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    runner = CliRunner()
    spec = write_campaign(tmp_path, [(f"1390000{i:04d}", "a") for i in range(3)])
    cid = json.loads(
        runner.invoke(app, ["campaign", "run", str(spec)]).output.splitlines()[-1]
    )["campaign_id"]
    assert "paused" in runner.invoke(app, ["campaign", "pause", str(cid)]).output
    bad = runner.invoke(app, ["campaign", "pause", str(cid)])
    assert bad.exit_code != 0
    assert "running" in runner.invoke(app, ["campaign", "resume", str(cid)]).output
    assert "cancelled" in runner.invoke(app, ["campaign", "cancel", str(cid)]).output
    status = json.loads(runner.invoke(app, ["campaign", "status", str(cid)]).output)
    assert status["status"] == "cancelled" and status["messages"] == {"rejected": 3}
    assert status["rejected_by"] == {"cancelled": 3}

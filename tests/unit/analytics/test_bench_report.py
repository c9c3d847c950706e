"""``jingxin bench report`` at a tiny size: the world it builds (a campaign through the real
road, receipts, clicks, replies, orders, a warehouse), the cold and warm reports timed by
stage, and the pandas baseline agreeing with the report's arms."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jingxin.bench.report import STAGES, run_report

RECIPIENTS = 2_000


def test_the_benchmark_reports_cold_and_warm_with_their_stages(tmp_path) -> None:
    # When the benchmark runs once over 2,000 recipients, keeping its folder
    figures = run_report(recipients=RECIPIENTS, runs=1, keep=tmp_path)
    # Then the world has the campaign's 5 % hold-out and the reactions drawn at their rates
    rows = figures["rows"]
    assert rows["recipients"] == RECIPIENTS and rows["rejected"] == 0
    assert rows["held_out"] + rows["queued"] == RECIPIENTS
    assert 0.03 < rows["held_out"] / RECIPIENTS < 0.07
    assert 0 < rows["replies"] < rows["clicks"] < rows["queued"] and 0 < rows["orders"]
    # And a cold and a warm report were timed, with every stage
    stages = {stage for _, _, stage in STAGES} | {"render", "other"}
    assert set(figures["cold_stages_s"]) == set(figures["warm_stages_s"]) == stages
    assert figures["cold_runs_s"] == [figures["cold_s"]] and figures["warm_s"] > 0
    assert figures["warm_stages_s"]["collect"] < figures["cold_stages_s"]["collect"]
    # And the report has every table, its charts, and a page that works offline
    assert {"arms", "funnel", "comparisons", "timeline", "by_region", "by_tenure"} \
        <= set(figures["tables"])  # fmt: skip
    assert figures["tables"]["arms"] == 3 and figures["charts"] >= 4
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert figures["html_bytes"] == (tmp_path / "report.html").stat().st_size
    assert "<script src=\"http" not in page
    # And the pandas baseline counted the same arms
    assert figures["baseline"]["agrees"] is True and figures["baseline_ratio"] > 0
    assert figures["dialect"] == "sqlite" and figures["goal_met"] is True


def test_the_command_prints_one_json_line(tmp_path, monkeypatch) -> None:
    from jingxin.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["bench", "report", "--recipients", "300", "--runs", "1",
                                      "--no-record"])  # fmt: skip
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert (line["benchmark"], line["recipients"], line["runs"]) == ("report", 300, 1)
    assert "machine" in line and line["warm_s"] > 0

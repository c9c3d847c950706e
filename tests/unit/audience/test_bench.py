"""The audience benchmarks at a tiny scale: they run, and their two sides agree."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jingxin.cli import app


def bench(name: str, scale: int) -> dict:
    result = CliRunner().invoke(app, ["bench", name, "--scale", str(scale)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.output.strip().splitlines()[-1])


def test_composite_spec_matches_hand_written_sql():
    figures = bench("composite", 400)
    assert figures["data"] == "synth"
    assert figures["selected"] == figures["hand_sql_selected"]
    assert figures["spec_s"] > 0 and figures["hand_sql_s"] > 0


def test_resident_cells_agree_with_pandas():
    figures = bench("resident-cells", 200)
    assert figures["homes_agree_share"] == 1.0
    assert figures["events"] > 0


def test_planfit_and_features_report_a_ratio():
    for name in ("planfit", "audience-features"):
        figures = bench(name, 300)
        assert figures["speedup_vs_pandas"] > 0
        assert "pandas_extrapolated" not in figures


def test_a_large_scale_extrapolates_the_pandas_baseline_and_says_so(monkeypatch):
    # Given a pandas cap below the scale (as at 10M subscribers)
    import jingxin.bench.audience as bench_audience

    monkeypatch.setattr(bench_audience, "PANDAS_EVENTS_CAP", 50)
    # When the benchmark runs
    figures = bench("resident-cells", 200)
    # Then pandas ran on the first 50 subscribers, was scaled up, and the homes it found agree
    assert figures["pandas_extrapolated"] is True
    assert figures["pandas_subscribers"] == 50
    assert figures["pandas_s"] > figures["pandas_measured_s"]
    assert figures["homes_agree_share"] == 1.0

"""The audience benchmarks at a tiny scale: they run, and their two sides agree."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jingxin.cli import app


@pytest.fixture(autouse=True)
def quick_data(monkeypatch):
    """The quick numpy warehouse, not the synthetic operator: unit tests of this area do
    not depend on another area's generator."""
    import jingxin.bench.audience as bench_audience

    monkeypatch.setattr(bench_audience, "_synth_tables", lambda scale, events: None)


def bench(name: str, scale: int) -> dict:
    result = CliRunner().invoke(app, ["bench", name, "--scale", str(scale)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.output.strip().splitlines()[-1])


def test_composite_spec_matches_hand_written_sql():
    figures = bench("composite", 400)
    assert figures["data"] == "quickdata"
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

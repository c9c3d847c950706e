"""``jingxin audience ...`` through the real app, on a tiny DuckDB file."""

from __future__ import annotations

import pytest
import tiny
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.warehouse.connection import open_duckdb

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps tables to the terminal; a wide console keeps cells whole for asserts."""
    from rich.console import Console

    import jingxin.cli.audience as cli_audience

    monkeypatch.setattr(cli_audience, "console", Console(width=250))


@pytest.fixture(scope="module")
def wh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    wh = open_duckdb(path)
    tiny.load(wh)
    wh.close()
    return path


def run(*args, ok=True):
    result = runner.invoke(app, list(map(str, args)))
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def spec_dir(wh_file, tmp_path_factory):
    run("audience", "features", "--warehouse", wh_file)  # as of 2024-07-01 by default
    d = tmp_path_factory.mktemp("specs")
    (d / "pudong.yaml").write_text(
        "name: pudong\nwhere: {field: home_district, op: eq, value: 浦东新区}\n")
    (d / "postpaid.yaml").write_text(
        "name: postpaid\nwhere: {field: plan.payment, op: eq, value: postpaid}\n")
    (d / "bad.yaml").write_text(
        "name: bad\nwhere: {all: [{field: region, op: eq, value: x},"
        " {field: arpuu, op: gt, value: 1}]}\n")
    (d / "never.yaml").write_text(
        "name: never\nwhere: {all: [{field: arpu, op: gt, value: 9}, "
        "{field: arpu, op: lt, value: 1}]}\n")
    return d


def test_count_preview_explain_export(wh_file, spec_dir, tmp_path):
    assert run("audience", "count", spec_dir / "pudong.yaml", "--warehouse",
               wh_file).output.strip() == "3"
    out = run("audience", "preview", spec_dir / "pudong.yaml", "--warehouse", wh_file).output
    assert "+86138****0001" in out and "+8613800000001" not in out
    out = run("audience", "explain", spec_dir / "pudong.yaml", "--overlap",
              spec_dir / "postpaid.yaml", "--warehouse", wh_file).output
    assert "pudong: 3 subscribers" in out and "by tenure_group" in out
    assert "overlap with" in out and "2 of 3 here" in out and "SELECT" in out
    target = tmp_path / "list.csv"
    run("audience", "export", spec_dir / "pudong.yaml", "--out", target, "--warehouse",
        wh_file)
    assert target.read_text().splitlines()[0].startswith('"msisdn"')
    assert len(target.read_text().splitlines()) == 4


def test_broken_spec_fails_before_any_query(wh_file, spec_dir):
    result = run("audience", "count", spec_dir / "bad.yaml", "--warehouse", wh_file, ok=False)
    assert result.exit_code != 0
    assert "where.all[1].field: unknown field 'arpuu'; did you mean 'arpu'?" in str(
        result.exception)


def test_contradictory_spec_says_it_matches_nothing(wh_file, spec_dir):
    out = run("audience", "count", spec_dir / "never.yaml", "--warehouse", wh_file).output
    assert "contradict" in out and "matches nothing" in out


def test_planfit_report(wh_file, spec_dir):
    out = run("audience", "planfit", "--report", "--warehouse", wh_file).output
    assert "5 subscribers, 4 with a recommendation" in out
    assert "mismatched by plan" in out and "可省" in out


def test_clusters_and_crosssell(wh_file, spec_dir):
    assert "k = 2" in run("audience", "clusters", "--k", "2", "--warehouse", wh_file).output
    out = run("audience", "crosssell", "--min-support", "0.2", "--warehouse", wh_file).output
    assert "也办理了" in out


def test_train_churn_on_a_csv(tmp_path, monkeypatch):
    from test_models import churn_csv

    monkeypatch.setenv("JINGXIN_HOME", str(tmp_path))
    csv = tmp_path / "export.csv"
    churn_csv().to_csv(csv, index=False)
    scores = tmp_path / "scores.csv"
    out = run("audience", "train-churn", "--csv", csv, "--label", "Churn", "--score-out",
              scores).output
    assert "AUC" in out and "Service calls" in out
    assert (tmp_path / "var" / "models" / "churn-export.joblib").exists()
    assert scores.read_text().splitlines()[0].endswith(",score")
    bad = run("audience", "train-churn", "--csv", csv, "--label", "Churned", ok=False)
    assert "no label column 'Churned'" in str(bad.exception)

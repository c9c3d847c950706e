"""``jingxin probe run|history|list`` and ``jingxin scheduler`` against the simulator and a
fake hall in a thread: exit codes, what is printed, what is stored."""

from __future__ import annotations

import json

import pytest
from probe_fakes import ThreadedHall, closed_port
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.errors import ConfigError

pytestmark = pytest.mark.timeout(60)


def hall_answers(text: str) -> tuple[str | None, float]:
    return {"YE": ("您的余额12元。", 0.0), "LL": ("本月已用流量1.2GB。", 0.0)}.get(text, (None, 0.0))


def configure(tmp_path, monkeypatch, url: str, *, ll_expect: str = "流量") -> None:
    config = tmp_path / "jingxin.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'jx.db'}"

[probing]
smsc_url = "{url}"
timeout_seconds = 1.0

[[probes]]
name = "balance"
msisdn = "+8613900000001"
text = "YE"
expect = '余额\\d+元'
max_latency_ms = 2000

[[probes]]
name = "usage"
msisdn = "+8613900000002"
text = "LL"
expect = '{ll_expect}'
""", encoding="utf-8")
    monkeypatch.setenv("JINGXIN_CONFIG", str(config))


def test_run_passes_fails_and_the_history_reports_both(tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    with ThreadedHall(hall_answers) as hall:
        # Given two probes the hall answers as expected
        configure(tmp_path, monkeypatch, hall.url)
        # When they run, Then both pass and the exit code is 0
        ok = runner.invoke(app, ["probe", "run", "--json"])
        assert ok.exit_code == 0, ok.output
        first = json.loads(ok.stdout)
        assert first["ok"] and [r["probe"] for r in first["results"]] == ["balance", "usage"]
        # Given the usage probe now expects something else
        configure(tmp_path, monkeypatch, hall.url, ll_expect="套餐")
        # When they run again, Then the exit code is 1 and the failure is shown with its reason
        failed = runner.invoke(app, ["probe", "run"])
        assert failed.exit_code == 1, failed.output
        assert "FAILED" in failed.output and "does not match /套餐/" in failed.output
        assert "2 probes, 1 passed, 1 failed" in failed.output
        # And --probe runs only the one named
        one = runner.invoke(app, ["probe", "run", "--probe", "balance", "--json"])
        assert one.exit_code == 0 and [r["probe"] for r in json.loads(one.stdout)["results"]] == ["balance"]
    # Then the history has 3 balance runs (all passed) and 2 usage runs (one failed)
    report = runner.invoke(app, ["probe", "history", "--json", "--since", "1h"])
    assert report.exit_code == 0, report.output
    stats = {s["probe"]: s for s in json.loads(report.stdout)["probes"]}
    assert (stats["balance"]["runs"], stats["balance"]["pass_rate"]) == (3, 1.0)
    assert (stats["usage"]["runs"], stats["usage"]["passed"], stats["usage"]["last_ok"]) == (2, 1, False)
    assert "does not match /套餐/" in stats["usage"]["last_failure_reason"]
    assert stats["balance"]["p50_ms"] is not None and stats["balance"]["last_failure_at"] is None
    table = runner.invoke(app, ["probe", "history", "--probe", "usage", "--limit", "1"])
    assert "50.0%" in table.output and "last 1 runs" in table.output and "balance" not in table.output


def test_an_unreachable_simulator_is_said_once_and_exits_1(tmp_path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    configure(tmp_path, monkeypatch, url)
    metrics = tmp_path / "probes.prom"
    result = CliRunner().invoke(app, ["probe", "run", "--metrics-file", str(metrics)])
    assert result.exit_code == 1
    # stdout: the log (stderr) says it too, where another test's logging set-up sends it
    assert result.stdout.count("not reachable") == 1 and "every probe failed (balance, usage)" in result.stdout
    # And the metrics file (node_exporter's textfile collector) shows both down
    written = metrics.read_text(encoding="utf-8")
    assert 'jingxin_probe_last_ok{probe="balance"} 0.0' in written
    assert 'jingxin_probe_failures_total{probe="usage"} 1.0' in written


def test_an_invalid_pattern_stops_before_anything_is_sent(tmp_path, monkeypatch) -> None:
    configure(tmp_path, monkeypatch, "http://127.0.0.1:1", ll_expect="流量(")
    result = CliRunner().invoke(app, ["probe", "run"])
    assert isinstance(result.exception, ConfigError)
    assert "probes[1].expect: /流量(/ is not a regular expression" in str(result.exception)
    assert not (tmp_path / "jx.db").exists()  # the store was never opened


def test_list_shows_the_configured_probes(tmp_path, monkeypatch) -> None:
    configure(tmp_path, monkeypatch, "http://127.0.0.1:8775")
    result = CliRunner().invoke(app, ["probe", "list"])
    assert result.exit_code == 0
    assert "balance" in result.output and "/余额\\d+元/" in result.output and "2 probes via" in result.output


def test_the_scheduler_runs_the_probes_the_number_of_times_asked(tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    with ThreadedHall(hall_answers) as hall:
        configure(tmp_path, monkeypatch, hall.url)
        result = runner.invoke(app, ["scheduler", "--no-journeys", "--iterations", "2", "--interval", "0.2"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": 2/2 passed") == 2 and "scheduler stopped after 2 runs" in result.output
    history = json.loads(runner.invoke(app, ["probe", "history", "--json"]).stdout)
    assert {s["probe"]: s["runs"] for s in history["probes"]} == {"balance": 2, "usage": 2}

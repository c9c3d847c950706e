"""The warehouse commands end to end through the ``jingxin`` CLI (typer's CliRunner)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jingxin.cli import app

PLANS = [
    ["plan_id", "name", "tier", "payment", "monthly_fee", "data_mb", "voice_min", "sms",
     "overage_data_per_mb", "overage_voice_per_min", "overage_sms", "contract_months",
     "generation"],
    ["P18", "Basic 18", "1", "prepaid", "18", "1024", "100", "50", "0.29", "0.19", "0.1", "0",
     "4"],
    ["P58", "Smart 58", "3", "postpaid", "58", "10240", "300", "100", "0.29", "0.19", "0.1",
     "12", "5"],
]
SUBSCRIBERS = [
    ["subscriber_id", "msisdn", "plan_id", "payment", "status", "gender", "birthday",
     "entry_date", "contract_end", "star_level", "region", "handset_model",
     "handset_generation", "app_user", "suspended_since"],
    ["1", "13812345678", "P18", "prepaid", "active", "F", "", "2025-05-01", "", "2", "Haidian",
     "", "", "true", ""],
    ["2", "+86 186 1234 5678", "P58", "postpaid", "active", "M", "", "2020-01-01", "", "4",
     "Chaoyang", "", "", "false", ""],
    ["3", "010-12345678", "P58", "postpaid", "active", "M", "", "2020-01-01", "", "4",
     "Chaoyang", "", "", "false", ""],
]
USAGE = [
    ["subscriber_id", "month", "plan_id", "data_mb", "voice_min", "sms", "bill", "topup_count",
     "topup_amount", "roaming_days_domestic", "roaming_days_international"],
    ["1", "2025-06-01", "P18", "800", "90", "10", "18", "1", "50", "0", "0"],
    ["2", "2025-06-01", "P58", "12000", "310", "5", "64.5", "0", "0", "2", "0"],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


@pytest.fixture
def run(tmp_path, monkeypatch):
    # Settings read ./jingxin.toml and JINGXIN_*: run in an empty directory, no overrides.
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_WAREHOUSE__PATH", "JINGXIN_WAREHOUSE__BACKEND"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_import_tables_and_summary_on_the_default_warehouse(run, tmp_path):
    # Given plans, subscribers (one a landline) and usage as CSV files
    write(tmp_path / "plans.csv", PLANS)
    write(tmp_path / "subs.csv", SUBSCRIBERS)
    write(tmp_path / "usage.csv", USAGE)
    # When each is imported into the default warehouse
    assert run("import", "plans", "plans.csv").exit_code == 0
    result = run("import", "subscribers", "subs.csv", "--max-rejects", "50%")
    assert run("import", "usage_monthly", "usage.csv").exit_code == 0
    # Then the landline is rejected into var/rejects with its line
    assert result.exit_code == 0, result.output
    assert "2 rows loaded, 1 rejected of 3 read" in result.output
    assert "msisdn: invalid msisdn: not mobile" in result.output
    [rejects] = (tmp_path / "var" / "rejects").glob("subscribers-subs-*.rejects.csv")
    assert rejects.read_text().splitlines()[1].startswith("4,msisdn,")
    assert (tmp_path / "var" / "warehouse.duckdb").exists()
    # And tables and summary show what is there
    tables = run("tables")
    assert tables.exit_code == 0
    assert "subscribers" in tables.output and "usage_monthly" in tables.output
    summary = run("summary")
    assert summary.exit_code == 0, summary.output
    for text in ("2 subscribers", "Basic 18", "china_unicom", "> 12 months", "< 6 months",
                 "usage percentiles, 2025-06", "data (MB)"):
        assert text in summary.output


def test_import_dir_with_replace_and_an_explicit_warehouse(run, tmp_path):
    out = tmp_path / "synth"
    out.mkdir()
    write(out / "plans.csv", PLANS)
    write(out / "subscribers.csv", SUBSCRIBERS[:3])
    for _ in range(2):  # --replace makes the second run a no-op in effect
        result = run("import-dir", str(out), "--replace", "--warehouse", "w.duckdb")
        assert result.exit_code == 0, result.output
    assert "plans: 2 rows loaded" in result.output
    assert "subscribers: 2 rows loaded, 0 rejected" in result.output
    assert "2 rows in the table" in result.output


def test_tables_schema_lists_columns_from_the_contract(run):
    result = run("tables", "--schema")
    assert result.exit_code == 0
    assert "### subscribers" in result.output
    assert "| `msisdn` | string |  | E.164, e.g. +8613812345678; msisdn, normalised" in \
        result.output
    assert "derived on import" in result.output


ERRORS = [
    (["import", "plans", "logo.png"], "neither a Parquet file nor UTF-8 CSV"),
    (["import", "plan", "logo.png"], "unknown warehouse table 'plan'"),
    (["import", "plans", "missing.csv"], "missing.csv: no such file"),
    (["import-dir", "."], "no <table>.parquet or <table>.csv files"),
    (["summary", "--warehouse", "none.duckdb"], "no warehouse at none.duckdb"),
    (["summary", "--as-of", "June"], "--as-of: 'June' is not a date"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_cli_errors_are_one_clean_line_with_exit_code_2(run, tmp_path, monkeypatch, capsys,
                                                        args, message):
    # Given an image where a table file should be
    from jingxin.cli import main

    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    # When main() runs as the console script would
    monkeypatch.setattr("sys.argv", ["jingxin", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    # Then it says what was wrong, in one message, and exits 2
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err

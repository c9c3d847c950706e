"""``jingxin import --replace`` of an all-bad file and ``--max-rejects``: refused with one
line and exit code 2, the table untouched."""

from __future__ import annotations

import csv

import pytest

from jingxin.cli import main

HEADER = ["plan_id", "name", "tier", "payment", "monthly_fee", "data_mb", "voice_min", "sms",
          "overage_data_per_mb", "overage_voice_per_min", "overage_sms", "contract_months",
          "generation"]


def _plans(path, tiers):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i, tier in enumerate(tiers):
            writer.writerow([f"P{i}", "Basic", tier, "prepaid", "18", "1024", "100", "50",
                             "0.29", "0.19", "0.1", "0", "4"])
    return path


def _run(monkeypatch, capsys, *args):
    monkeypatch.setattr("sys.argv", ["jingxin", *args])
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())  # rich wraps long lines


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_WAREHOUSE__PATH", "JINGXIN_WAREHOUSE__BACKEND",
                 "JINGXIN_WAREHOUSE__MAX_REJECT_SHARE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_replace_with_every_row_bad_is_refused_and_keeps_the_table(here, monkeypatch, capsys):
    # Given a loaded plans table and a file of bad rows
    _plans(here / "good.csv", ["1", "2"])
    assert _run(monkeypatch, capsys, "import", "plans", "good.csv")[0] == 0
    _plans(here / "bad.csv", ["x", "y", "z"])
    # When it replaces the table
    code, _out, err = _run(monkeypatch, capsys, "import", "plans", "bad.csv", "--replace")
    # Then exit 2, one line naming the count and the rejects file, and the rows are kept
    assert code == 2
    line = " ".join(err.split())
    assert "3 of 3 rows rejected" in line and "rejects: " in line and "Traceback" not in err
    code, out, _ = _run(monkeypatch, capsys, "tables")
    assert code == 0 and "plans" in out and " 2 " in out


def test_max_rejects_option_and_setting(here, monkeypatch, capsys):
    _plans(here / "mixed.csv", ["1", "x", "3", "4"])  # 25% bad
    code, _, err = _run(monkeypatch, capsys, "import", "plans", "mixed.csv")
    assert code == 2 and "1 of 4 rows rejected (25.0%, more than the 5.0% allowed)" in err
    assert "--max-rejects SHARE or the warehouse.max_reject_share setting" in err
    code, _, err = _run(monkeypatch, capsys, "import", "plans", "mixed.csv",
                        "--max-rejects", "lots")
    assert code == 2 and "--max-rejects: 'lots' is not a share" in err
    monkeypatch.setenv("JINGXIN_WAREHOUSE__MAX_REJECT_SHARE", "0.3")
    code, out, _ = _run(monkeypatch, capsys, "import", "plans", "mixed.csv")
    assert code == 0 and "3 rows loaded, 1 rejected" in out
    code, out, _ = _run(monkeypatch, capsys, "import", "plans", "mixed.csv", "--replace",
                        "--max-rejects", "25%")
    assert code == 0 and "3 rows in the table" in out

"""``jingxin journeys`` end to end on a synthetic warehouse: a day scanned (counts checked
against plain SQL over the same warehouse, messages in the outbox, one sample message per
trigger), scanned again (nothing twice), a dry run, the recorded runs, the trigger list,
and bad input as one line naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.errors import InputError

CORE = ("--trigger", "birthday", "--trigger", "anniversary", "--trigger", "renewal")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    from jingxin.data.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("journeys-synth") / "synth"
    synthesize(params=SynthParams(subscribers=2000, location_subscribers=5, location_days=1,
                                  cells=600), out=out)  # fmt: skip
    return out


@pytest.fixture
def cli(tmp_path, monkeypatch, synth_dir):
    # Settings from a jingxin.toml in an empty directory: a store and a warehouse there
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.data.warehouse.directory import import_directory

    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(
        '[store]\nurl = "sqlite:///journeys.db"\n\n[warehouse]\npath = "wh.duckdb"\n',
        encoding="utf-8")  # fmt: skip
    wh = open_duckdb(tmp_path / "wh.duckdb")
    import_directory(wh, synth_dir, rejects_dir=tmp_path / "rejects")
    wh.close()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    assert invoke("template", "seed-library", "--approve-as", "lead").exit_code == 0
    yield invoke, tmp_path


def _ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def _json(done) -> dict:
    """The command's JSON document: its stdout line (a log line another test's logging
    set-up may have sent to the same stream is not part of it)."""
    lines = [line for line in _ok(done).splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.output
    return json.loads(lines[0])


def _sql(folder: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(folder / "wh.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _busiest_birthday(folder: Path) -> date:
    """The October 2026 day on which most active subscribers were born."""
    (day,), = _sql(folder, """
        SELECT day(birthday) FROM subscribers
        WHERE status = 'active' AND month(birthday) = 10 AND day(birthday) BETWEEN 2 AND 28
        GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1""")  # fmt: skip
    return date(2026, 10, day)


def test_a_day_scanned_from_the_command_line(cli) -> None:
    invoke, folder = cli
    day = _busiest_birthday(folder)
    md = f"month({{c}}) = {day.month} AND day({{c}}) = {day.day}"
    # Given what plain SQL says is due that day
    (born,), = _sql(folder, "SELECT count(*) FROM subscribers WHERE status = 'active' AND "
                    + md.format(c="birthday"))  # fmt: skip
    (joined,), = _sql(folder, "SELECT count(*) FROM subscribers WHERE status = 'active' AND "
                      + md.format(c="entry_date") + f" AND year(entry_date) < {day.year}")  # fmt: skip
    (due,), = _sql(folder, "SELECT count(*) FROM subscribers WHERE status = 'active' AND "
                   f"contract_end = DATE '{day.isoformat()}' + INTERVAL 30 DAY")  # fmt: skip
    (unknown,), = _sql(folder, "SELECT count(*) FROM subscribers WHERE status = 'active' "
                       "AND birthday IS NULL")  # fmt: skip
    # When the core triggers scan that day
    done = invoke("journeys", "run", "--date", day.isoformat(), *CORE, "--json")
    report = {t["trigger"]: t for t in _json(done)["triggers"]}
    # Then the candidates are exactly those subscribers
    assert born > 0
    assert report["birthday"]["candidates"] == born
    assert report["birthday"]["skipped"] == ({"no_birthday": unknown} if unknown else {})
    assert report["anniversary"]["candidates"] == joined
    assert report["renewal"]["candidates"] + sum(report["renewal"]["skipped"].values()) == due
    # And every candidate was handed over: queued, deferred, or refused by policy
    for t in report.values():
        assert t["state"] == "done"
        assert t["queued"] + t["deferred"] + sum(t["rejected"].values()) == t["candidates"]
    store = open_store("sqlite:///journeys.db")
    try:
        with store.sessions() as s:
            queued = s.scalar(select(func.count()).select_from(Message)
                              .where(Message.source == "journey"))  # fmt: skip
    finally:
        store.dispose()
    assert queued == sum(t["queued"] + t["deferred"] for t in report.values())
    assert "今天是您的生日" in report["birthday"]["sample"]

    # When the same day is scanned again, as a table
    again = _ok(invoke("journeys", "run", "--date", day.isoformat(), *CORE))
    # Then every trigger says it was done earlier, and the samples are not repeated
    assert again.count("done (earlier)") == 3
    assert "sample messages" not in again

    # And the runs are listed
    runs = _json(invoke("journeys", "runs", "--since", "3650d", "--json"))["runs"]
    assert sorted((r["trigger"], r["state"], r["day"]) for r in runs) == [
        ("anniversary", "done", day.isoformat()), ("birthday", "done", day.isoformat()),
        ("renewal", "done", day.isoformat())]  # fmt: skip
    table = _ok(invoke("journeys", "runs", "--since", "3650d"))
    assert "birthday" in table and "no_birthday" in table


def test_a_dry_run_prints_counts_and_samples_and_records_nothing(cli) -> None:
    invoke, folder = cli
    day = _busiest_birthday(folder)
    out = _ok(invoke("journeys", "run", "--date", day.isoformat(), "--trigger", "birthday",
                     "--dry-run"))  # fmt: skip
    assert "dry run: nothing delivered" in out
    assert "[birthday]" in out and "今天是您的生日" in out
    assert "no journey runs since" in _ok(invoke("journeys", "runs", "--since", "3650d"))


def test_the_triggers_are_listed(cli) -> None:
    invoke, _ = cli
    out = _ok(invoke("journeys", "triggers"))
    for name in ("birthday", "anniversary", "renewal", "holiday", "roaming"):
        assert name in out


def test_bad_input_is_one_line(cli) -> None:
    invoke, folder = cli
    # In process: the error names the option
    done = invoke("journeys", "run", "--date", "2026-02-30", "--trigger", "birthday")
    assert isinstance(done.exception, InputError)
    assert "--date: '2026-02-30' is not a date" in str(done.exception)
    done = invoke("journeys", "run", "--date", "2026-10-15", "--trigger", "moon")
    assert "unknown trigger(s) 'moon'" in str(done.exception)
    # From the console script: one line and exit code 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    ran = subprocess.run([sys.executable, "-m", "jingxin.cli", "journeys", "runs", "--since",
                          "yesterday"], cwd=folder, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "error: --since: 'yesterday' is neither a span (7d, 12h, 30m) nor an ISO date-time "
        "(2026-10-08T10:00:00+08:00)"]  # fmt: skip

"""``jingxin bench mo-store``: one flush of the MO store timed in process on PostgreSQL,
each flush acknowledging the one before. Every MO - the repeats of an acknowledged text
included - is stored once, and only the last flush's parts wait for an acknowledgement."""

from __future__ import annotations

from typer.testing import CliRunner

from jingxin.bench.mo_store import MoStorePlan, mo_store_bench
from jingxin.cli import app


def test_every_mo_is_stored_once_repeats_included_and_acks_release_the_rest(pg_url, tmp_path) -> None:
    report = mo_store_bench(store_url=pg_url, workdir=tmp_path,
                            plan=MoStorePlan(flushes=8, size=20, repeats=0.25))  # fmt: skip
    assert report["failures"] == []
    assert report["mo_messages"] == report["mo_injected"] == (50 + 8) * 20
    assert report["waiting_for_ack"] == 20
    assert 0 < report["wall_p50_ms"] <= report["wall_p99_ms"] and report["cpu_ms_per_flush"] > 0


def test_the_command_refuses_sqlite_and_bad_options_with_the_reason() -> None:
    result = CliRunner().invoke(app, ["bench", "mo-store", "--flushes", "5",
                                      "--store-url", "sqlite:///x.db"])  # fmt: skip
    assert result.exit_code != 0 and "needs PostgreSQL" in str(result.exception)
    result = CliRunner().invoke(app, ["bench", "mo-store", "--repeats", "1.5"])
    assert result.exit_code == 2 and "--repeats" in result.output

"""``jingxin db`` through the real command app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import make_engine, migrate, open_store
from jingxin.data.store.tenants import list_tenants

runner = CliRunner()


def test_db_upgrade_current_and_check(empty_store_url: str) -> None:
    # Given an empty database
    head = migrate.head()
    # When it is upgraded through the command line
    upgraded = runner.invoke(app, ["db", "upgrade", "--url", empty_store_url])
    # Then the command prints the revision and the database is at head
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from empty to revision {head}" in upgraded.output
    assert migrate.current(empty_store_url) == head
    assert "default tenant: operator" in upgraded.output
    store = open_store(empty_store_url)
    with store.sessions() as session:
        assert [t.id for t in list_tenants(session)] == ["operator"]
    store.dispose()
    again = runner.invoke(app, ["db", "upgrade", "--url", empty_store_url])
    assert f"already at revision {head}" in again.output
    current = runner.invoke(app, ["db", "current", "--url", empty_store_url])
    assert f"revision {head} (up to date)" in current.output
    checked = runner.invoke(app, ["db", "check", "--url", empty_store_url])
    assert checked.exit_code == 0, checked.output
    assert "tables match the models" in checked.output


def test_db_check_fails_on_a_database_behind_head(empty_store_url: str) -> None:
    result = runner.invoke(app, ["db", "check", "--url", empty_store_url])
    assert result.exit_code != 0
    assert "run `jingxin db upgrade`" in str(result.exception)


def test_db_upgrade_uses_the_configured_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no --url, no config file, and a working directory without var/
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JINGXIN_STORE__URL", raising=False)
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    # When the schema is upgraded
    result = runner.invoke(app, ["db", "upgrade"])
    # Then the default SQLite file is created under var/ of the working directory
    assert result.exit_code == 0, result.output
    assert "sqlite:///var/jingxin.db" in result.output
    assert (tmp_path / "var" / "jingxin.db").exists()


def test_db_upgrade_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere" / "store.db"
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{target}")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert migrate.current(f"sqlite:///{target}") == migrate.head()


def test_db_check_scratch() -> None:
    result = runner.invoke(app, ["db", "check", "--scratch"])
    assert result.exit_code == 0, result.output
    assert "migrations (scratch database)" in result.output


def test_db_downgrade_to_base_drops_every_table(empty_store_url: str) -> None:
    # Given a store at head
    migrate.upgrade(empty_store_url)
    # When it is downgraded to base (confirmation given on the command line)
    refused = runner.invoke(app, ["db", "downgrade", "base", "--url", empty_store_url], input="n\n")
    assert refused.exit_code != 0
    assert migrate.current(empty_store_url) == migrate.head()  # "no" changed nothing
    result = runner.invoke(app, ["db", "downgrade", "base", "--url", empty_store_url, "--yes"])
    # Then the schema is empty
    assert result.exit_code == 0, result.output
    assert "downgraded to revision base (no tables)" in result.output
    assert migrate.current(empty_store_url) is None
    engine = make_engine(empty_store_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()

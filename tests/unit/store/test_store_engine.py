"""Engines and error conversion: URLs, SQLite pragmas, readable StoreErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Index, text

from jingxin.data.store import (
    Store,
    make_engine,
    make_sessionmaker,
    safe_url,
    store_errors,
    transaction,
)
from jingxin.data.store.engine import parse_url
from jingxin.data.store.migrate import describe_difference
from jingxin.data.store.models import Tenant
from jingxin.errors import StoreError


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///var/jingxin.db", "sqlite"),
        ("sqlite://", "sqlite"),
        ("postgresql://u:p@db/jx", "postgresql+psycopg"),
        ("postgres://u@db/jx", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/jx", "postgresql+psycopg"),
    ],
)
def test_parse_url_picks_the_driver(url: str, driver: str) -> None:
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@db/jx", "unsupported store URL"),
        ("not a url", "cannot parse the store URL"),
        ("oracle+cx://u@db/jx", "unsupported store URL"),
    ],
)
def test_parse_url_rejects_other_databases(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says):
        parse_url(url)


def test_safe_url_hides_the_password() -> None:
    shown = safe_url("postgresql+psycopg://jx:s3cret@db:5432/jx")
    assert "s3cret" not in shown
    assert shown == "postgresql+psycopg://jx:***@db:5432/jx"


def test_sqlite_file_gets_its_directory_and_pragmas(tmp_path: Path) -> None:
    # Given a path whose directory does not exist yet
    path = tmp_path / "deep" / "er" / "jingxin.db"
    # When an engine opens it
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        journal = conn.execute(text("PRAGMA journal_mode")).scalar()
        foreign_keys = conn.execute(text("PRAGMA foreign_keys")).scalar()
        busy = conn.execute(text("PRAGMA busy_timeout")).scalar()
    engine.dispose()
    # Then the file exists in WAL mode with foreign keys enforced and a busy timeout
    assert path.exists()
    assert (journal, foreign_keys) == ("wal", 1)
    assert busy and busy >= 1000


def test_relative_sqlite_path_is_relative_to_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite:///var/jingxin.db")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert (tmp_path / "var" / "jingxin.db").exists()


def test_in_memory_sqlite_is_one_database_across_connections() -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_unwritable_sqlite_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        make_engine(f"sqlite:///{blocker / 'sub' / 'jingxin.db'}")


def test_store_errors_names_the_operation_and_the_fault(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with (
        pytest.raises(StoreError) as caught,
        store_errors("reading the moon"),
        engine.connect() as conn,
    ):
        conn.execute(text("SELECT * FROM moon"))
    engine.dispose()
    message = str(caught.value)
    assert message.startswith("reading the moon failed:")
    assert "no such table: moon" in message
    assert "[SQL:" not in message  # the statement dump stays in the chained exception


def test_transaction_rolls_back_on_error(store: Store) -> None:
    # Given a unit of work that adds a tenant and then fails on a duplicate
    with pytest.raises(StoreError, match="duplicate"), transaction(store.sessions) as session:
        session.add(Tenant(id="a", name="A", signature="【A】"))
        session.flush()
        session.add(Tenant(id="a", name="A again", signature="【A】"))
        session.flush()
    # Then nothing of it was written
    with make_sessionmaker(store.engine)() as session:
        assert session.get(Tenant, "a") is None


@pytest.mark.parametrize(
    ("diff", "line"),
    [
        (
            [("modify_nullable", None, "messages", "text", {}, True, False)],
            "modify_nullable messages.text: database has True, models say False",
        ),
        (("remove_index", Index("ix_t_x", "x")), "remove_index ix_t_x"),
    ],
)
def test_schema_differences_read_as_one_line(diff: object, line: str) -> None:
    assert describe_difference(diff) == line

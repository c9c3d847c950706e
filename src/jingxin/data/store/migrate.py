"""Schema migrations of the operational store, run from code (no alembic.ini needed).

The migrations ship inside the package (``migrations/versions``). :func:`upgrade` brings a
database to a revision, :func:`current` says where it is, and :func:`check` compares the
tables a database has with the models, which is how a forgotten migration is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine

from jingxin.data.store.engine import make_engine, safe_url, store_errors
from jingxin.data.store.models import Base
from jingxin.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SCRATCH_URL = "sqlite://"


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """How a database compares with the models: its revision, the head, the differences."""

    current: str | None
    head: str
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.current == self.head and not self.differences


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head() -> str:
    """The newest revision shipped with this version of jingxin."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships 0001
        raise StoreError(f"no migrations found under {MIGRATIONS_DIR}")
    return revision


def upgrade(url: str, revision: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``revision``; returns the revision it is now at."""
    with _engine(url) as engine:
        _upgrade_engine(engine, revision=revision, where=safe_url(url))
        with _connect(engine, url) as connection:
            return _current_revision(connection)


def downgrade(url: str, revision: str) -> str | None:
    """Downgrade the database at ``url`` to ``revision`` (``base``: no tables at all)."""
    with _engine(url) as engine:
        _migrate_engine(engine, revision=revision, where=safe_url(url), direction="downgrade")
        with _connect(engine, url) as connection:
            return _current_revision(connection)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated, or empty)."""
    with _engine(url) as engine, _connect(engine, url) as connection:
        return _current_revision(connection)


def check(url: str = SCRATCH_URL) -> SchemaCheck:
    """Compare the database at ``url`` with the models.

    With the default scratch URL, an in-memory SQLite database is first upgraded to head,
    so the result says whether the shipped migrations produce exactly the models.
    """
    with _engine(url) as engine:
        if url == SCRATCH_URL:
            _upgrade_engine(engine, revision="head", where="a scratch SQLite database")
        with _connect(engine, url) as connection, store_errors("comparing the schema"):
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            revision = context.get_current_revision()
            diffs = compare_metadata(context, Base.metadata)
    return SchemaCheck(
        current=revision, head=head(), differences=tuple(describe_difference(d) for d in diffs)
    )


def describe_difference(diff: Any) -> str:
    """One line for one Alembic autogenerate difference."""
    if isinstance(diff, list):  # modify_* operations come grouped per column
        return "; ".join(describe_difference(d) for d in diff)
    kind, *args = diff
    names = [getattr(a, "name", None) or str(a) for a in args if a is not None]
    if kind.startswith("modify_"):
        table, column, _info, old, new = args[1:6]
        return f"{kind} {table}.{column}: database has {old!r}, models say {new!r}"
    return f"{kind} " + " ".join(names[:3])


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _connect(engine: Engine, url: str) -> Iterator[Connection]:
    with store_errors(f"connecting to the store at {safe_url(url)}"):
        connection = engine.connect()
    with connection:
        yield connection


def _upgrade_engine(engine: Engine, *, revision: str, where: str) -> None:
    _migrate_engine(engine, revision=revision, where=where, direction="upgrade")


def _migrate_engine(engine: Engine, *, revision: str, where: str, direction: str) -> None:
    config = alembic_config()
    doing = f"{direction[:-1]}ing {where} to {revision}"
    try:
        with store_errors(doing), engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)
    except CommandError as exc:
        raise StoreError(f"{doing} failed: {exc}") from exc


def _current_revision(connection: Connection) -> str | None:
    with store_errors("reading the schema revision"):
        return MigrationContext.configure(connection).get_current_revision()

"""Shared fixtures: real services where a user would have them.

A test that needs PostgreSQL or Redis asks for ``pg_url`` or ``redis_url``. On a machine
without the service it skips with the reason; in CI (``CI=true``) it fails instead, so a
green CI always means the service-backed tests ran.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_HOST = os.environ.get("JINGXIN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("JINGXIN_TEST_PG_PORT", "5432"))
PG_ADMIN_DB = os.environ.get("JINGXIN_TEST_PG_DB", "test")
REDIS_HOST = os.environ.get("JINGXIN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("JINGXIN_TEST_REDIS_PORT", "6379"))


def _build_each_app_once() -> None:
    """Typer builds an app's whole click tree (a signature and the type hints of every
    command: ~0.3 s for ``jingxin``) on each ``CliRunner.invoke`` and each ``app(...)``.
    The tree of one app does not change between calls, so a test process builds it once;
    an app given a command or a group since is built again."""
    import typer.main
    import typer.testing

    build = typer.main.get_command
    built: dict[int, tuple[object, tuple[int, int], object]] = {}

    def get_command(app):  # type: ignore[no-untyped-def]
        shape = (len(app.registered_commands), len(app.registered_groups))
        hit = built.get(id(app))
        if hit is None or hit[0] is not app or hit[1] != shape:
            hit = built[id(app)] = (app, shape, build(app))
        return hit[2]

    typer.main.get_command = get_command
    typer.testing._get_command = get_command


_build_each_app_once()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def service_missing(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where the service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: service-backed tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> str:
    if not port_open(PG_HOST, PG_PORT):
        service_missing(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"jx_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={PG_ADMIN_DB}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        service_missing(f"cannot create a PostgreSQL test database: {exc}")
    yield f"{pg_server}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database flushed before and after the test."""
    if not port_open(REDIS_HOST, REDIS_PORT):
        service_missing(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    import redis

    # Each pytest-xdist worker (gw0, gw1, ...) flushes a database of its own.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{15 - int(worker.removeprefix('gw') or 0) % 8}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty store (no tables) on SQLite (a temp file) and on PostgreSQL (a fresh
    database): for the tests of migrations themselves."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jingxin.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Stores migrated to head ONCE per session, which ``store_url`` copies: running every
    migration for each of two hundred store tests cost a minute and a half of the suite.
    The PostgreSQL template is made on first use (``pg_template``)."""
    from jingxin.data.store import migrate

    path = tmp_path_factory.mktemp("store-template") / "jingxin.db"
    migrate.upgrade(f"sqlite:///{path}")
    made: dict[str, str] = {"sqlite": str(path)}
    yield made
    name = made.get("postgres")
    if name is not None:
        import psycopg

        admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={PG_ADMIN_DB}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_sqlite(migrated_templates: dict[str, str]):
    """``migrated_sqlite(path)``: a copy of the session's migrated SQLite store at
    ``path``, as a URL (``open_store(url)`` then needs no upgrade)."""
    import shutil

    def copy(path) -> str:  # type: ignore[no-untyped-def]
        shutil.copyfile(migrated_templates["sqlite"], path)
        return f"sqlite:///{path}"

    return copy


def _pg_template(pg_server: str, made: dict[str, str]) -> str:
    name = made.get("postgres")
    if name is None:
        import psycopg

        from jingxin.data.store import migrate

        name = f"jx_template_{uuid.uuid4().hex[:12]}"
        admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={PG_ADMIN_DB}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made["postgres"] = name  # dropped at the end of the session even if upgrade fails
        migrate.upgrade(f"{pg_server}/{name}")
    return name


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path, migrated_templates) -> Iterator[str]:
    """The same store test on SQLite (a temp file) and on PostgreSQL (a fresh database),
    each already migrated to head (a copy of the session's template; upgrading it again
    is a no-op)."""
    if request.param == "sqlite":
        import shutil

        path = tmp_path / "jingxin.db"
        shutil.copyfile(migrated_templates["sqlite"], path)
        yield f"sqlite:///{path}"
        return
    import psycopg

    pg_server = request.getfixturevalue("pg_server")
    template = _pg_template(pg_server, migrated_templates)
    name = f"jx_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname={PG_ADMIN_DB}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield f"{pg_server}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(store_url: str):
    """The store at :func:`store_url` (SQLite and PostgreSQL), disposed after the test; a
    module that needs another store defines its own ``store``."""
    from jingxin.data.store import open_store

    opened = open_store(store_url)  # a copy of the migrated template: at head already
    yield opened
    opened.dispose()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's hook)
    """The bad-input suite (tests/e2e/test_bad_input.py) says how many cases it ran."""
    import sys

    suite = next((m for name, m in sys.modules.items() if name.endswith("test_bad_input")), None)
    results = getattr(suite, "RESULTS", None)
    if results:
        passed = sum(ok for _, ok in results)
        terminalreporter.write_line(
            f"bad-input suite: {len(results)} cases run, {passed} passed, "
            f"{len(results) - passed} failed"
        )


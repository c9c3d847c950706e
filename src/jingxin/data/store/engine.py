"""Connecting to the operational store: engines, sessions, and database errors made readable.

SQLite (the default, one file) gets WAL, foreign keys and a busy timeout on every
connection, so a dispatch worker and the console can share the file. PostgreSQL goes
through psycopg 3 (``postgresql+psycopg://``; a bare ``postgresql://`` is taken to mean it).
Every SQLAlchemy error that leaves this package is a :class:`~jingxin.errors.StoreError`.

A PostgreSQL connection is checked before each use (pool pre-ping, so a worker outlives a
database restart), but locally: an idle connection whose socket has nothing to read is
taken as alive without a round trip; one the server closed (a restart, a terminated
backend: the server writes its farewell and closes) is readable, and only then is the
server asked (``SELECT 1``), which fails, and the pool drops every older connection.
"""

from __future__ import annotations

import re
import select
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from jingxin.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 10_000


def parse_url(url: str | URL) -> URL:
    """Parse a store URL, choosing psycopg 3 for PostgreSQL; raises :class:`StoreError`."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse the store URL {url!r}: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported store URL {safe_url(parsed)}: use sqlite:///path/to/file.db "
            "or postgresql+psycopg://user:password@host/dbname"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with any password masked, fit for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``; creates the parent directory of an SQLite file."""
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, echo=echo)
        engine = create_engine(parsed, echo=echo, pool_pre_ping=True)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {safe_url(parsed)}: {exc}") from exc
    engine.dialect.do_ping = LocalPing(engine.dialect.do_ping)  # type: ignore[method-assign]
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _binary_lists)
    return engine


def _binary_lists(dbapi_connection: Any, _record: Any) -> None:
    """``list`` parameters go to PostgreSQL as binary arrays (psycopg falls back to its text
    form by itself for an empty list or one of nothing but NULLs, which binary cannot type).

    Why: the batch statements bind one array per column (``unnest``), and psycopg's text
    form quotes and escapes every element with two regular expressions - 0.3 ms an array
    of 200, ~17 ms of Python for a batch of 200 hall replies; the binary form packs the
    same array 7.5x faster (measured: 5 arrays of 200 in 1.47 ms as text, 0.20 ms as
    binary). psycopg keeps text as its default for parameters in ``%s`` form (a text array
    lets the server infer the element type); every array parameter here is cast to its
    type in the statement (``CAST(:x AS TEXT[])``, SQLAlchemy's ``::VARCHAR(20)[]``), so
    the exact binary type is harmless."""
    from psycopg.types.array import ListBinaryDumper

    adapters = getattr(dbapi_connection, "adapters", None)
    if adapters is not None:
        adapters.register_dumper(list, ListBinaryDumper)


class LocalPing:
    """The pool's pre-ping, asking the server only when the socket says something happened.

    The plain pre-ping is a ``SELECT 1`` round trip on every checkout: on a short unit of
    work (the delivery entry's is two statements) it was a third of the round trips. A
    server that goes away closes its end, which makes our idle socket readable; a socket
    with nothing to read on an idle connection is alive as far as a ping could tell.
    Anything else - readable, mid transaction, closed, or no ``poll`` on this platform -
    gets ``server``'s ping. The limit: a peer that vanished without a word (a host reboot,
    a VIP failover, a NAT idle timeout) leaves a quiet socket, and the first statement on
    it fails once as a StoreError; SQLAlchemy then drops the pool's connections. Workers
    retry that (claims, flushes and handler runs keep their rows); an API call answers it
    as one failed request."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def __call__(self, dbapi_connection: Any) -> bool:
        return _quiet(dbapi_connection) or bool(self.server(dbapi_connection))


def _quiet(dbapi_connection: Any) -> bool:
    """Is this psycopg connection idle, open, and its socket without anything to read?"""
    poll = getattr(select, "poll", None)
    if poll is None:
        return False
    try:
        from psycopg import pq

        if (dbapi_connection.closed
                or dbapi_connection.info.transaction_status != pq.TransactionStatus.IDLE):
            return False
        fd = dbapi_connection.pgconn.socket
    except Exception:  # noqa: BLE001 - any doubt: ask the server
        return False
    poller = poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {}
    if in_memory:
        # One shared connection, or every checkout would see a different empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = Path(database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of the store file {path}: {exc}"
            ) from exc
    engine = create_engine(url, echo=echo, **kwargs)
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (console, reports) run while a worker writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """The session factory every repository caller uses (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@dataclass(frozen=True, slots=True)
class Store:
    """An open store: the engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]
    # This thread's connection while :meth:`pinned` holds one (see there).
    _pinned: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    def transaction(self) -> AbstractContextManager[Session]:
        """A unit of work (see :func:`transaction`)."""
        return transaction(self.sessions)

    def reading(self) -> AbstractContextManager[Session]:
        """A session for reads that need no snapshot in common, or for a write that is
        one statement (see :func:`reading`)."""
        return reading(self)

    def autocommit(self) -> AbstractContextManager[Connection]:
        """A connection whose every statement is its own transaction on PostgreSQL (no
        ``BEGIN``/``COMMIT`` round trips), for single statements; a transaction on
        SQLite. Errors as :class:`StoreError` are the caller's ``store_errors``."""
        if self.engine.dialect.name != "postgresql":
            return self.engine.begin()
        pinned = getattr(self._pinned, "connection", None)
        if pinned is not None:
            if pinned.in_transaction():  # SQLAlchemy's own autobegin: nothing on the server
                pinned.rollback()
            return nullcontext(pinned)
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within the block, this thread's :meth:`autocommit` connections (and so
        :meth:`reading`'s) are one connection, taken from the pool once: for a run of
        single statements such as a handler batch's six, each of which would otherwise
        check a connection out and in again (the pool's bookkeeping and a liveness check
        each time: a tenth to a fifth of a hall batch's fixed cost, BENCHMARKS.md). Nothing
        else changes: every statement is still its own transaction. A broken connection
        fails the statements after it in the block, as a new one would have been tried
        instead; the pool drops it at the end. Nested blocks keep the outer connection;
        SQLite: nothing to do (a transaction per use, as before)."""
        if self.engine.dialect.name != "postgresql" or getattr(self._pinned, "connection", None):
            yield
            return
        with store_errors("opening a store connection"):
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._pinned.connection = connection
        try:
            yield
        finally:
            self._pinned.connection = None
            connection.close()

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | URL, *, echo: bool = False, upgrade: bool = False) -> Store:
    """Open the store at ``url``; with ``upgrade``, first migrate it to the newest schema."""
    if upgrade:
        from jingxin.data.store.migrate import upgrade as upgrade_schema

        target = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        upgrade_schema(target)
    engine = make_engine(url, echo=echo)
    return Store(engine=engine, sessions=make_sessionmaker(engine))


def server_advice(store: Store) -> list[str]:
    """What an operator should change on the store's server for the worker's speed (one
    line each; none on SQLite, or when the server cannot be asked). PostgreSQL with
    autovacuum off: nothing analyses the tables, and the plans psycopg's prepared
    statements are given while a table is young (a new store, a new month's rows) keep
    reading it whole as it grows - the hall's reads took 2 ms a call instead of 0.05 after
    20,000 MO (BENCHMARKS.md, "The way back, a sixth time")."""
    if store.engine.dialect.name != "postgresql":
        return []
    try:
        with store.engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    except SQLAlchemyError:
        return []  # the worker's own start says what is wrong with the store
    if autovacuum != "on":
        return ["PostgreSQL's autovacuum is off: nothing keeps the planner's statistics, and "
                "the worker's statements slow down as the tables grow; turn it on, or run "
                "ANALYZE after large loads and regularly while the worker runs"]
    return []


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, database errors as StoreError."""
    with store_errors("the store transaction (commit or rollback)"), sessions.begin() as session:
        yield session


@contextmanager
def reading(store: Store) -> Iterator[Session]:
    """A session for reads. PostgreSQL: on a connection in autocommit, so each statement
    is its own transaction and a read costs one round trip, not three (``BEGIN``, the
    query, ``COMMIT``) - which counts where a batch of MO is answered in a few dozen
    reads. Two statements may then see different moments: use :meth:`Store.transaction`
    where they must agree, and for anything that writes in more than one statement (a
    write that is one statement is atomic on its own: the unsubscribe handler's opt-outs).
    SQLite: a transaction."""
    if store.engine.dialect.name != "postgresql":
        with transaction(store.sessions) as session:
            yield session
        return
    with store_errors("opening a store connection"):
        opened = store.autocommit()
    with opened as connection, Session(bind=connection, expire_on_commit=False) as session:
        yield session


@contextmanager
def store_errors(doing: str) -> Iterator[None]:
    """Convert SQLAlchemy errors raised inside the block into a readable :class:`StoreError`.

    ``doing`` names the operation, e.g. ``"adding 13800000000 to the blacklist"``.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"{doing} failed: {describe_error(exc)}") from exc


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<cols>.+)")
_PG_KEY_DETAIL = re.compile(r"Key \((?P<cols>[^)]*)\)=\((?P<vals>.*)\) already exists")


def describe_error(exc: SQLAlchemyError) -> str:
    """One readable line saying what the database refused (no SQL, no parameters)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig).strip()
    else:
        text = str(exc).split("\n[SQL:")[0].strip()
    if isinstance(exc, IntegrityError):
        table = getattr(getattr(exc.orig, "diag", None), "table_name", None)
        return _describe_integrity(text, table)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return f"the database connection was lost ({text})"
    first, *_ = text.splitlines() or [""]
    return first


def _describe_integrity(text: str, table: str | None) -> str:
    sqlite = _SQLITE_UNIQUE.search(text)
    if sqlite:  # "UNIQUE constraint failed: blacklist.msisdn, blacklist.tenant_id"
        qualified = [c.strip() for c in sqlite["cols"].split(",")]
        table = qualified[0].rpartition(".")[0] or None
        columns = ", ".join(c.rpartition(".")[2] for c in qualified)
        return f"duplicate in {table or 'a table'}: a row with the same ({columns}) already exists"
    pg = _PG_KEY_DETAIL.search(text)
    if pg:
        return (
            f"duplicate in {table or 'a table'}: a row with the same ({pg['cols']}) = "
            f"({pg['vals']}) already exists"
        )
    if "FOREIGN KEY" in text or "foreign key" in text:
        detail = next((ln for ln in text.splitlines() if ln.startswith("DETAIL:")), "")
        detail = detail.removeprefix("DETAIL:").strip()
        return "a referenced row does not exist" + (f": {detail}" if detail else "")
    return "constraint violated: " + " ".join(text.split())

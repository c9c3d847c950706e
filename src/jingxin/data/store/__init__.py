"""The operational store: tables, sessions, migrations and thin repositories.

SQLite by default (one file, zero set-up), PostgreSQL in production. Callers open an
engine with :func:`make_engine`, sessions with :func:`make_sessionmaker`, and wrap a unit
of work in :func:`transaction`; repositories (:mod:`.contact`, :mod:`.tenants`,
:mod:`.audit`) take the session first and everything else by keyword. Any database
error leaves this package as :class:`~jingxin.errors.StoreError`.
"""

from jingxin.data.store.engine import (
    Store,
    make_engine,
    make_sessionmaker,
    open_store,
    safe_url,
    store_errors,
    transaction,
)

__all__ = [
    "Store",
    "make_engine",
    "make_sessionmaker",
    "open_store",
    "safe_url",
    "store_errors",
    "transaction",
]

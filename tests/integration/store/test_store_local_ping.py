"""The PostgreSQL pool's pre-ping asks the server only when the socket says something
happened: a quiet idle connection is reused without a round trip, and one whose backend
was terminated (as in a restart) is replaced before use, so the caller never sees it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from jingxin.data.store import open_store

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.mark.postgres
def test_a_quiet_connection_is_not_pinged_and_a_cut_one_is_replaced(pg_url) -> None:
    store = open_store(pg_url)
    asked: list[bool] = []
    ping = store.engine.dialect.do_ping
    server_ping = ping.server

    def counted(connection) -> bool:
        asked.append(True)
        return server_ping(connection)

    ping.server = counted
    try:
        with store.engine.connect() as conn:
            before = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        # Given a pooled connection that was used and is idle
        # When it is checked out again, Then the server is not asked
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == before
        assert asked == []
        # When the server terminates it (a restart cuts every backend)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (before,))  # waits for it
        # Then the next checkout asks the server, drops it, and works on a new connection
        with store.engine.connect() as conn:
            after = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert after != before and asked
    finally:
        store.dispose()

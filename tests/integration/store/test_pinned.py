"""``Store.pinned``: within the block this thread's autocommit connections are one pooled
connection, and nothing else changes - every statement is still its own transaction,
a failed statement does not spoil the next, a Session through ``reading`` works on it,
other threads and nested blocks are unaffected; SQLite keeps a transaction per use."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from jingxin.data.store.models import OptOut


def _backend(conn) -> int:
    return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_one_connection_for_the_block_and_every_statement_its_own_transaction(store) -> None:
    with store.pinned():
        with store.autocommit() as conn:
            first = _backend(conn)
            conn.execute(insert(OptOut).values(msisdn="+8613900000001", tenant_id="t", source="sms"))
        with store.autocommit() as conn:
            assert _backend(conn) == first  # the same connection, not a new checkout
            # committed already: another connection sees the row
            with store.engine.connect() as other:
                assert other.execute(select(OptOut.msisdn)).scalars().all() == ["+8613900000001"]
            # Given a statement that fails, Then the next one on the same connection works
            taken = conn.execute(select(OptOut.id)).scalar_one()
            with pytest.raises(IntegrityError):  # the same primary key again
                conn.execute(insert(OptOut).values(id=taken, msisdn="+8613900000002",
                                                   tenant_id="t", source="sms"))  # fmt: skip
            assert conn.execute(select(OptOut.msisdn)).scalars().all() == ["+8613900000001"]
        with store.reading() as session:
            assert _backend(session.connection()) == first
            assert session.execute(select(OptOut.msisdn)).scalars().all() == ["+8613900000001"]
        with store.pinned():  # nested: the outer connection stays
            with store.autocommit() as conn:
                assert _backend(conn) == first
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(_backend_of(store)))
        thread.start()
        thread.join()
        assert seen and seen[0] != first  # another thread: a connection of its own
    with store.autocommit() as conn:  # after the block: checkouts as before
        assert conn.execute(select(OptOut.msisdn)).scalars().all() == ["+8613900000001"]


def _backend_of(store) -> int:
    with store.autocommit() as conn:
        return _backend(conn)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_on_sqlite_pinning_changes_nothing(store) -> None:
    with store.pinned():
        with store.autocommit() as conn:  # a transaction, committed at the end of the block
            conn.execute(insert(OptOut).values(msisdn="+8613900000003", tenant_id="t", source="sms"))
    with store.reading() as session:
        assert session.execute(select(OptOut.msisdn)).scalars().all() == ["+8613900000003"]

"""A frozen statement (jingxin.data.store.frozen) on PostgreSQL answers as SQLAlchemy's own
execution of the same statement: the same rows, the same bind checks (a naive datetime
refused), timestamps back as aware UTC; what cannot be frozen is refused when compiled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import BigInteger, Text, bindparam, cast, create_engine, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from jingxin.data.store import open_store
from jingxin.data.store.bulk import in_array
from jingxin.data.store.engine import store_errors
from jingxin.data.store.frozen import Frozen, Read, run_reads
from jingxin.data.store.models import MoMessage
from jingxin.data.store.models.base import UtcDateTime
from jingxin.errors import StoreError

AT = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
# PostgreSQL only: frozen statements need a driver with named parameters (psycopg's).
pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


@pytest.fixture
def pg_store(store_url: str):
    opened = open_store(store_url)
    with opened.engine.begin() as conn:
        conn.execute(insert(MoMessage), [
            dict(channel="sim", msisdn=f"+861390000000{i}", service_number="10086", text=f"TD {i}",
                 coding=0, parts=1, parts_expected=1, complete=True, undecodable=False,
                 received_at=AT + timedelta(seconds=i), dedup_key=f"k{i}")
            for i in range(5)])  # fmt: skip
    yield opened
    opened.dispose()


def _statement():
    since = bindparam("since", type_=UtcDateTime())
    return (select(MoMessage.id, MoMessage.text, MoMessage.received_at, literal("50%").label("share"))
            .where(in_array(MoMessage.id, bindparam("ids", type_=ARRAY(BigInteger))),
                   MoMessage.received_at >= since)
            .order_by(MoMessage.id))  # fmt: skip


def test_rows_as_sqlalchemy_gives_them(pg_store) -> None:
    frozen = Frozen(_statement)
    with pg_store.engine.connect() as conn:
        ids = list(conn.execute(select(MoMessage.id).order_by(MoMessage.id)).scalars())
        # a moment in another zone binds as the same instant
        since = (AT + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8)))
        expected = conn.execute(_statement(), {"ids": ids[:4], "since": since}).all()
        got = frozen.all(conn, ids=ids[:4], since=since)
        again = frozen.all(conn, ids=ids[3:], since=since)  # compiled once, run again
    assert [tuple(r) for r in got] == [tuple(r) for r in expected]
    assert [r.text for r in got] == ["TD 1", "TD 2", "TD 3"]
    assert {r.share for r in got} == {"50%"}  # a literal with % survives the driver's format
    assert all(r.received_at.tzinfo is UTC for r in got)
    assert [r.text for r in again] == ["TD 3", "TD 4"]


def test_bad_parameters_are_refused_as_sqlalchemy_refuses_them(pg_store) -> None:
    frozen = Frozen(_statement)
    with pg_store.engine.connect() as conn:
        with pytest.raises(ValueError, match="naive datetime"):
            frozen.all(conn, ids=[1], since=datetime(2026, 12, 7, 3, 0))
        with pytest.raises(TypeError, match="no parameter"):
            frozen.all(conn, ids=[1], since=AT, limit=3)


def test_what_cannot_be_frozen_is_refused(pg_store) -> None:
    expanding = Frozen(lambda: select(MoMessage.id).where(MoMessage.id.in_([1, 2])))
    with pg_store.engine.connect() as conn, pytest.raises(ValueError, match="depends on its values"):
        expanding.all(conn)
    positional = create_engine("sqlite://")
    with positional.connect() as conn, pytest.raises(ValueError, match="named parameters"):
        Frozen(_statement).all(conn, ids=[1], since=AT)


def test_reads_sent_together_answer_as_each_alone_and_see_their_transaction(pg_store) -> None:
    frozen = Frozen(_statement)
    texts = Read(Frozen(lambda: select(MoMessage.text).order_by(MoMessage.id)),
                 finish=lambda rows: [r.text for r in rows])  # fmt: skip
    with pg_store.engine.begin() as conn:
        ids = list(conn.execute(select(MoMessage.id).order_by(MoMessage.id)).scalars())
        # a row this transaction wrote and has not committed: the reads see it
        conn.execute(insert(MoMessage), [dict(
            channel="sim", msisdn="+8613900000009", service_number="10086", text="TD 9",
            coding=0, parts=1, parts_expected=1, complete=True, undecodable=False,
            received_at=AT, dedup_key="k9")])  # fmt: skip
        alone = [frozen.all(conn, ids=ids[:2], since=AT), frozen.all(conn, ids=ids[2:], since=AT)]
        together = run_reads(conn, [Read(frozen, {"ids": ids[:2], "since": AT}),
                                    Read(frozen, {"ids": ids[2:], "since": AT}), texts])  # fmt: skip
        # an empty batch and a single read take the plain way
        assert run_reads(conn, []) == []
        assert run_reads(conn, [texts])[0][-1] == "TD 9"
    assert [[tuple(r) for r in rows] for rows in together[:2]] == [[tuple(r) for r in rows] for rows in alone]
    assert all(r.received_at.tzinfo is UTC for r in together[0])
    assert together[2] == ["TD 0", "TD 1", "TD 2", "TD 3", "TD 4", "TD 9"]


def test_a_failing_read_among_several_is_a_store_error_and_the_connection_goes_on(pg_store) -> None:
    frozen = Frozen(_statement)
    number = Frozen(lambda: select(cast(bindparam("n", type_=Text), BigInteger).label("x")))
    with pg_store.autocommit() as conn:
        with pytest.raises(StoreError, match="reading two things failed: invalid input syntax"), \
                store_errors("reading two things"):  # fmt: skip
            run_reads(conn, [Read(frozen, {"ids": [1], "since": AT}), Read(number, {"n": "x"})])
        # the next reads on the same connection answer
        again = run_reads(conn, [Read(frozen, {"ids": [1, 2], "since": AT}), Read(number, {"n": "7"})])
    assert [len(again[0]), [tuple(r) for r in again[1]]] == [2, [(7,)]]


def test_a_connection_lost_under_reads_is_invalidated_and_the_next_one_answers(pg_store) -> None:
    frozen = Frozen(_statement)
    reads = [Read(frozen, {"ids": [1], "since": AT}), Read(frozen, {"ids": [2], "since": AT})]
    with pg_store.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_store.autocommit() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(StoreError, match="reading after a restart failed"), \
                store_errors("reading after a restart"):  # fmt: skip
            run_reads(conn, reads)
        assert conn.invalidated
    with pg_store.engine.connect() as conn:
        assert [len(rows) for rows in run_reads(conn, reads)] == [1, 1]

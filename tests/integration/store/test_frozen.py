"""A frozen statement (jingxin.data.store.frozen) on PostgreSQL answers as SQLAlchemy's own
execution of the same statement: the same rows, the same bind checks (a naive datetime
refused), timestamps back as aware UTC; what cannot be frozen is refused when compiled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import BigInteger, bindparam, create_engine, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from jingxin.data.store import open_store
from jingxin.data.store.bulk import in_array
from jingxin.data.store.frozen import Frozen
from jingxin.data.store.models import MoMessage
from jingxin.data.store.models.base import UtcDateTime

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

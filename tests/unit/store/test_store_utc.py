"""Timestamps are timezone-aware UTC in Python even though SQLite stores no offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jingxin.data.store import Store, transaction
from jingxin.data.store.models import Tenant
from jingxin.errors import StoreError

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moment=instants)
def test_any_aware_instant_comes_back_as_the_same_utc_instant(
    store: Store, moment: datetime
) -> None:
    # Given a tenant created at an instant in some offset
    with transaction(store.sessions) as session:
        session.merge(Tenant(id="t", name="T", signature="【T】", created_at=moment))
    # When it is read back in a fresh session
    with store.sessions() as session:
        stored = session.get(Tenant, "t")
        assert stored is not None
        back = stored.created_at
    # Then it is the same instant, expressed in UTC
    assert back == moment
    assert back.utcoffset() == timedelta(0)
    assert back.tzinfo is UTC


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="naive datetime"), transaction(store.sessions) as session:
        session.add(Tenant(id="n", name="N", signature="【N】", created_at=datetime(2026, 1, 1)))

"""An MO proves its number in service (SQLite and PostgreSQL): the failure counts of the
senders go back to zero and their invalid marks are cleared; other numbers keep theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from jingxin.data.store import open_store
from jingxin.data.store.models import NumberFailure, SubscriberState
from jingxin.dispatch.invalid import seen_alive

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
DEAD, OTHER, FRESH = "+8613900000001", "+8613900000002", "+8613900000003"


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def test_an_mo_clears_its_senders_marks_and_only_theirs(store) -> None:
    # Given two numbers marked invalid after three failures each
    before = NOW - timedelta(hours=1)
    with store.transaction() as s:
        for number in (DEAD, OTHER):
            s.execute(insert(NumberFailure).values(msisdn=number, failures=3,
                                                   last_status="undeliverable", last_at=before))  # fmt: skip
            s.execute(insert(SubscriberState).values(
                msisdn=number, in_service=True, complaint_sensitive=False, invalid_since=before,
                invalid_reason="3 permanent delivery failures", updated_at=before))  # fmt: skip
    # When MO arrive from one of them (twice) and from a number with no record at all
    with store.engine.begin() as conn:
        cleared = seen_alive(conn, msisdns=[DEAD, FRESH, DEAD], now=NOW)
    # Then only that number's count and mark are gone
    with store.sessions() as s:
        failures = dict(s.execute(select(NumberFailure.msisdn, NumberFailure.failures)).all())
        marks = dict(s.execute(select(SubscriberState.msisdn, SubscriberState.invalid_since)).all())
    assert cleared == 1
    assert failures == {DEAD: 0, OTHER: 3}
    assert marks[DEAD] is None and marks[OTHER] is not None and FRESH not in marks
    # And nothing to clear is no error and no change
    with store.engine.begin() as conn:
        assert seen_alive(conn, msisdns=[DEAD, FRESH], now=NOW) == 0
        assert seen_alive(conn, msisdns=[], now=NOW) == 0

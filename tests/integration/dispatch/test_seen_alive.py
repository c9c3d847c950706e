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


def mark_invalid(store, *numbers: str) -> None:
    """Each number marked invalid an hour before NOW, after three failures."""
    before = NOW - timedelta(hours=1)
    with store.transaction() as s:
        for number in numbers:
            s.execute(insert(NumberFailure).values(msisdn=number, failures=3,
                                                   last_status="undeliverable", last_at=before))  # fmt: skip
            s.execute(insert(SubscriberState).values(
                msisdn=number, in_service=True, complaint_sensitive=False, invalid_since=before,
                invalid_reason="3 permanent delivery failures", updated_at=before))  # fmt: skip


def test_an_mo_clears_its_senders_marks_and_only_theirs(store) -> None:
    # Given two numbers marked invalid after three failures each
    mark_invalid(store, DEAD, OTHER)
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


def test_the_handler_run_clears_the_marks_of_its_senders_before_answering(store) -> None:
    from jingxin.data.store.models import MoMessage
    from jingxin.dispatch.handlers import HandlerContext, HandlerRegistry, run_pending

    # Given a number marked invalid, and an MO from it waiting for its handlers
    mark_invalid(store, DEAD)
    before = NOW - timedelta(hours=1)
    with store.transaction() as s:
        s.execute(insert(MoMessage).values(
            channel="sim", msisdn=DEAD, service_number="10086", text="0", coding=0, parts=1,
            parts_expected=1, complete=True, undecodable=False, received_at=before,
            stored_at=before, dedup_key="mo:sim:1"))  # fmt: skip
    # When the handlers run (PostgreSQL: the resets ride on the pending read)
    tally = run_pending(store, registry=HandlerRegistry(), context=HandlerContext(), now=NOW)
    # Then the MO was taken and its number counts as in service again
    with store.sessions() as s:
        mark = s.scalar(select(SubscriberState.invalid_since).where(SubscriberState.msisdn == DEAD))
        failures = s.scalar(select(NumberFailure.failures).where(NumberFailure.msisdn == DEAD))
    assert tally.no_handler == 1
    assert mark is None and failures == 0

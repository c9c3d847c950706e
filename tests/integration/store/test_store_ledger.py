"""The contact ledger counts each contact once, however often a batch is retried."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from jingxin.data.store import Store, transaction
from jingxin.data.store.ledger import count_contacts, record_contacts
from jingxin.data.store.models import LedgerEntry

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def entry(
    msisdn: str, key: str, *, days_ago: int = 0, category: str = "marketing"
) -> dict[str, object]:
    at = NOW - timedelta(days=days_ago)
    return {
        "tenant_id": "operator",
        "msisdn": msisdn,
        "category": category,
        "contact_at": at,
        "local_date": at.date(),
        "idempotency_key": key,
    }


def test_retried_batches_count_once(store: Store) -> None:
    # Given a batch of contacts recorded, then recorded again with one new entry
    batch = [
        entry("13800000001", "c1"),
        entry("13800000001", "c2", days_ago=3),
        entry("13800000002", "c3", days_ago=10, category="notification"),
    ]
    with transaction(store.sessions) as session:
        first = record_contacts(session, entries=batch)
    with transaction(store.sessions) as session:
        second = record_contacts(session, entries=[*batch, entry("13800000002", "c4")])
    # Then only new keys were added
    assert (first, second) == (3, 1)
    # And counts follow the window and category asked for
    with store.sessions() as session:
        week = count_contacts(
            session, msisdns=["13800000001", "13800000002", "139"], since=NOW - timedelta(days=7)
        )
        marketing = count_contacts(
            session, msisdns=["13800000002"], since=NOW - timedelta(days=30), category="marketing"
        )
    assert week == {"13800000001": 2, "13800000002": 1}
    assert marketing == {"13800000002": 1}


def test_local_date_is_kept_as_a_calendar_day(store: Store) -> None:
    with transaction(store.sessions) as session:
        record_contacts(session, entries=[{**entry("1", "k"), "local_date": date(2026, 5, 11)}])
    with store.sessions() as session:
        assert session.scalar(select(LedgerEntry.local_date)) == date(2026, 5, 11)

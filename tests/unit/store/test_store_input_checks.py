"""Bad arguments to the repositories are InputErrors naming the field, before any write."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jingxin.data.store import Store, transaction
from jingxin.data.store.contact import record_consent, update_subscriber_state
from jingxin.data.store.ledger import record_contacts
from jingxin.errors import InputError

A = "13800000001"
ENTRY = {
    "tenant_id": "operator",
    "msisdn": A,
    "category": "marketing",
    "local_date": date(2026, 5, 1),
    "idempotency_key": "a",
}


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"category": "otp"}, "consent.category: 'otp' is not one of marketing, notification"),
        ({"channel": "fax"}, "consent.channel: 'fax' is not one of"),
        ({"wording": "  "}, "consent.wording"),
    ],
)
def test_bad_consent_input_is_an_input_error(
    store: Store, kwargs: dict[str, str], says: str
) -> None:
    fields = {
        "tenant_id": "shop",
        "msisdn": A,
        "category": "marketing",
        "channel": "app",
        "wording": "同意",
    } | kwargs
    with pytest.raises(InputError, match=says), transaction(store.sessions) as session:
        record_consent(session, **fields)


def test_unknown_subscriber_field_is_an_input_error(store: Store) -> None:
    with pytest.raises(InputError, match="unknown field.*shoe_size"):
        with transaction(store.sessions) as session:
            update_subscriber_state(session, msisdn=A, shoe_size=42)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"local_date": None}, "missing local_date"),
        ({"local_date": datetime(2026, 5, 1, tzinfo=UTC)}, "local_date must be a date"),
    ],
)
def test_bad_entries_are_named(store: Store, change: dict[str, object], says: str) -> None:
    with pytest.raises(InputError, match=f"ledger entry #1: {says}"):
        with transaction(store.sessions) as session:
            record_contacts(session, entries=[ENTRY, {**ENTRY, "idempotency_key": "b", **change}])

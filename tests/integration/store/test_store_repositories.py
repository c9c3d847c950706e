"""Repositories round-trip on SQLite and PostgreSQL; constraints surface as StoreError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from jingxin.data.store import Store, transaction
from jingxin.data.store.audit import list_actions, record_action
from jingxin.data.store.contact import (
    add_to_blacklist,
    load_contact_states,
    record_consent,
    record_opt_out,
    remove_from_blacklist,
    revoke_consent,
    update_subscriber_state,
)
from jingxin.data.store.models import Consent, LedgerEntry, Message, Template
from jingxin.data.store.tenants import (
    create_tenant,
    ensure_default_tenant,
    get_tenant,
    list_tenants,
)
from jingxin.errors import StoreError

A, B, C = "13800000001", "13800000002", "13800000003"
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
def tenants(store: Store) -> Store:
    with transaction(store.sessions) as session:
        ensure_default_tenant(session)
        create_tenant(session, tenant_id="shop", name="Shop", signature="【好店】")
    return store


def test_default_tenant_is_created_once(store: Store) -> None:
    with transaction(store.sessions) as session:
        first = ensure_default_tenant(session)
    with transaction(store.sessions) as session:
        again = ensure_default_tenant(session)
        assert [t.id for t in list_tenants(session)] == ["operator"]
    assert (first.id, again.id) == ("operator", "operator")
    assert again.implied_consent and again.timezone == "Asia/Shanghai"
    assert again.created_at.tzinfo is UTC


def test_duplicate_tenant_is_a_clear_store_error(tenants: Store) -> None:
    with pytest.raises(StoreError) as caught, transaction(tenants.sessions) as session:
        create_tenant(session, tenant_id="shop", name="Other", signature="【别】")
    message = str(caught.value)
    assert message.startswith("creating tenant 'shop' failed: duplicate in tenants")
    assert "(id)" in message


def test_tenant_settings_round_trip_as_json(tenants: Store) -> None:
    with transaction(tenants.sessions) as session:
        tenant = get_tenant(session, tenant_id="shop")
        assert tenant is not None
        tenant.settings = {"quiet_start": "22:00", "caps": {"marketing_per_week": 2}}
    with tenants.sessions() as session:
        stored = get_tenant(session, tenant_id="shop")
        assert stored is not None
        assert stored.settings == {"quiet_start": "22:00", "caps": {"marketing_per_week": 2}}


def test_contact_state_round_trip(tenants: Store) -> None:
    # Given consent, opt-outs, blacklist entries and subscriber state for three numbers
    complained = datetime(2026, 3, 1, 9, 30, tzinfo=BEIJING)
    with transaction(tenants.sessions) as session:
        record_consent(
            session,
            tenant_id="shop",
            msisdn=A,
            category="marketing",
            channel="web",
            wording="我同意接收好店的优惠短信",
        )
        record_consent(
            session,
            tenant_id="shop",
            msisdn=B,
            category="marketing",
            channel="sms",
            wording="回Y订阅",
        )
        assert revoke_consent(session, tenant_id="shop", msisdn=B) == 1
        record_opt_out(session, msisdn=A, source="sms_reply", tenant_id="operator")
        add_to_blacklist(session, msisdn=C, added_by="ops", reason="complaints")
        update_subscriber_state(
            session,
            msisdn=A,
            complaint_sensitive=True,
            last_complaint_at=complained,
            roaming_country="JP",
        )
    # When their states are loaded in bulk (with a number the store never saw)
    with tenants.sessions() as session:
        states = load_contact_states(session, msisdns=[A, B, C, "13999999999"])
    # Then each answers policy's questions from what was recorded
    a, b, c, unknown = (states[m] for m in (A, B, C, "13999999999"))
    assert a.has_consent(tenant_id="shop", category="marketing")
    assert not b.has_consent(tenant_id="shop", category="marketing")  # revoked
    assert a.opted_out(tenant_id="operator", category="marketing")
    assert not a.opted_out(tenant_id="shop", category="marketing")
    assert c.blacklisted(tenant_id="shop") and not a.blacklisted(tenant_id="shop")
    assert a.complaint_sensitive and a.roaming_country == "JP"
    assert a.last_complaint_at == complained and a.last_complaint_at.tzinfo is UTC
    assert unknown.in_service and not unknown.consents


def test_contact_state_for_one_tenant_skips_other_tenants_rows(tenants: Store) -> None:
    with transaction(tenants.sessions) as session:
        record_opt_out(session, msisdn=A, source="hotline", tenant_id="operator")
        record_opt_out(session, msisdn=A, source="api", tenant_id=None, category="notification")
    with tenants.sessions() as session:
        state = load_contact_states(session, msisdns=[A], tenant_id="shop")[A]
    assert state.opt_outs == ((None, "notification"),)


def test_bulk_load_crosses_chunk_boundaries(tenants: Store) -> None:
    numbers = [f"137{i:08d}" for i in range(1_203)]
    with transaction(tenants.sessions) as session:
        for number in numbers[::100]:
            add_to_blacklist(session, msisdn=number, added_by="import", tenant_id="shop")
    with tenants.sessions() as session:
        states = load_contact_states(session, msisdns=numbers)
    assert len(states) == len(numbers)
    assert [n for n in numbers if states[n].blacklisted(tenant_id="shop")] == numbers[::100]


@pytest.mark.parametrize("tenant_id", ["shop", None])
def test_blacklisting_twice_is_a_clear_store_error(tenants: Store, tenant_id: str | None) -> None:
    # Given a number already blacklisted (for one tenant, or for everyone)
    with transaction(tenants.sessions) as session:
        add_to_blacklist(session, msisdn=A, added_by="ops", tenant_id=tenant_id)
    # When it is blacklisted again in the same scope
    with pytest.raises(StoreError) as caught, transaction(tenants.sessions) as session:
        add_to_blacklist(session, msisdn=A, added_by="ops", tenant_id=tenant_id)
    # Then the error says what was attempted and that it is a duplicate
    scope = "tenant 'shop'" if tenant_id else "everyone"
    expected = f"adding {A} to the blacklist for {scope} failed: duplicate in blacklist"
    assert str(caught.value).startswith(expected)
    assert "msisdn" in str(caught.value)


def test_blacklist_removal(tenants: Store) -> None:
    with transaction(tenants.sessions) as session:
        add_to_blacklist(session, msisdn=A, added_by="ops")
        add_to_blacklist(session, msisdn=A, added_by="ops", tenant_id="shop")
    with transaction(tenants.sessions) as session:
        assert remove_from_blacklist(session, msisdn=A) == 1
    with tenants.sessions() as session:
        assert load_contact_states(session, msisdns=[A])[A].blacklisted_by == frozenset({"shop"})


def test_consent_for_an_unknown_tenant_violates_the_foreign_key(tenants: Store) -> None:
    with pytest.raises(StoreError, match="recording consent .* failed: a referenced row"):
        with transaction(tenants.sessions) as session:
            record_consent(
                session,
                tenant_id="ghost",
                msisdn=A,
                category="marketing",
                channel="app",
                wording="同意",
            )


def test_template_versions_are_unique_per_tenant_and_code(tenants: Store) -> None:
    def template(version: int) -> Template:
        return Template(
            tenant_id="shop",
            code="promo",
            version=version,
            category="marketing",
            body="{{name}}您好",
            variables={"name": "str"},
        )

    with transaction(tenants.sessions) as session:
        session.add_all([template(1), template(2)])
    with pytest.raises(StoreError, match="duplicate.*tenant_id.*code.*version"):
        with transaction(tenants.sessions) as session:
            session.add(template(2))
    with tenants.sessions() as session:
        versions = session.scalars(select(Template.version).order_by(Template.version)).all()
        assert versions == [1, 2]


@pytest.mark.parametrize("model", ["message", "ledger"])
def test_idempotency_keys_are_unique(tenants: Store, model: str) -> None:
    def row() -> Message | LedgerEntry:
        if model == "message":
            return Message(
                tenant_id="shop",
                msisdn=A,
                category="otp",
                lane=0,
                text="123456",
                idempotency_key="otp-1",
            )
        return LedgerEntry(
            tenant_id="shop",
            msisdn=A,
            category="marketing",
            local_date=datetime(2026, 5, 1).date(),
            idempotency_key="otp-1",
        )

    with transaction(tenants.sessions) as session:
        session.add(row())
    with pytest.raises(StoreError, match="duplicate.*idempotency_key"):
        with transaction(tenants.sessions) as session:
            session.add(row())


def test_message_timestamps_and_json_round_trip(tenants: Store) -> None:
    later = datetime(2026, 6, 1, 20, 0, tzinfo=BEIJING)
    with transaction(tenants.sessions) as session:
        message = Message(
            tenant_id="shop",
            msisdn=A,
            category="marketing",
            lane=2,
            text="hi",
            idempotency_key="m1",
            scheduled_at=later,
            smsc_ids=["a1", "a2"],
            cost=0.05,
        )
        session.add(message)
    with tenants.sessions() as session:
        stored = session.scalars(select(Message)).one()
    assert stored.scheduled_at == later and stored.scheduled_at.tzinfo is UTC
    assert stored.created_at.tzinfo is UTC
    assert stored.smsc_ids == ["a1", "a2"] and stored.cost == pytest.approx(0.05)
    assert (stored.state, stored.parts) == ("queued", 1)


def test_timestamp_comparisons_agree_across_offsets(tenants: Store) -> None:
    # Given a consent given at 09:00 in Beijing (01:00 UTC)
    given = datetime(2026, 1, 1, 9, 0, tzinfo=BEIJING)
    with transaction(tenants.sessions) as session:
        record_consent(
            session,
            tenant_id="shop",
            msisdn=A,
            category="notification",
            channel="hall",
            wording="同意",
            given_at=given,
        )
    # When queried with bounds in UTC
    with tenants.sessions() as session:
        between = select(Consent.id).where(
            Consent.given_at > datetime(2026, 1, 1, 0, 59, tzinfo=UTC),
            Consent.given_at < datetime(2026, 1, 1, 1, 1, tzinfo=UTC),
        )
        # Then the database compares instants, not wall-clock text
        assert len(session.scalars(between).all()) == 1


def test_staff_actions_are_listed_newest_first(tenants: Store) -> None:
    with transaction(tenants.sessions) as session:
        record_action(
            session,
            actor="li",
            action="approve",
            object_type="template",
            object_id=7,
            detail={"reason": "ok"},
        )
        record_action(session, actor="wang", action="start", object_type="campaign", object_id=3)
    with tenants.sessions() as session:
        entries = list_actions(session)
        about_template = list_actions(session, object_type="template", object_id=7)
    assert [e.actor for e in entries] == ["wang", "li"]
    assert [(e.action, e.detail) for e in about_template] == [("approve", {"reason": "ok"})]

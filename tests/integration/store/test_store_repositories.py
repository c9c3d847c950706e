"""Repositories round-trip on SQLite and PostgreSQL; constraints surface as StoreError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from jingxin.data.store import Store, transaction
from jingxin.data.store.audit import list_actions, record_action
from jingxin.data.store.contact import (
    add_to_blacklist,
    record_consent,
    record_opt_out,
    remove_from_blacklist,
    revoke_consent,
    update_subscriber_state,
)
from jingxin.data.store.models import Consent, LedgerEntry, Message, Template, utc_now
from jingxin.data.store.tenants import (
    create_tenant,
    ensure_default_tenant,
    get_tenant,
    list_tenants,
)
from jingxin.errors import InputError, StoreError

A, B, C = "+8613800000001", "+8613800000002", "+8613800000003"  # stored E.164
BEIJING = timezone(timedelta(hours=8))


def facts(store: Store, numbers: list[str], *, tenant: str, category: str = "marketing",
          now: datetime | None = None) -> dict[str, dict]:  # fmt: skip
    """What policy reads back about ``numbers`` for one tenant and category, as of ``now``
    (default: a minute from now), through the loader campaigns and ``policy batch`` use."""
    import pyarrow as pa

    from jingxin.policy.columns import CANDIDATE_FIELDS
    from jingxin.data.store.policy_state import load_batch

    n = len(numbers)
    candidates = pa.table({
        "msisdn": numbers, "tenant_id": [tenant] * n, "category": [category] * n,
        "source": ["campaign"] * n, "source_id": [1] * n, "priority": [0] * n,
        "score": [0.0] * n, "wanted_at": [None] * n,
        "idempotency_key": [f"k:{m}" for m in numbers],
    }, schema=pa.schema(CANDIDATE_FIELDS))  # fmt: skip
    with store.sessions() as session:
        table, _ = load_batch(
            session, candidates=candidates, now=now or utc_now() + timedelta(minutes=1)
        )
    return {row["msisdn"]: row for row in table.to_pylist()}


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
    # When policy reads them back for the shop and for the operator (with a number the
    # store never saw)
    numbers = [A, B, C, "+8613999999999"]
    shop = facts(tenants, numbers, tenant="shop")
    operator = facts(tenants, numbers, tenant="operator")
    # Then each answers policy's questions from what was recorded
    assert shop[A]["has_consent"] and not shop[B]["has_consent"]  # B's was revoked
    assert operator[A]["opted_out"] and not shop[A]["opted_out"]
    assert shop[C]["blacklisted"] and operator[C]["blacklisted"] and not shop[A]["blacklisted"]
    assert shop[A]["complaint_sensitive"] and shop[A]["roaming_country"] == "JP"
    assert shop[A]["last_complaint_at"] == complained
    unknown = shop["+8613999999999"]
    assert unknown["in_service"] and not (unknown["has_consent"] or unknown["opted_out"])


def test_an_opt_out_for_one_tenant_does_not_reach_another(tenants: Store) -> None:
    with transaction(tenants.sessions) as session:
        record_opt_out(session, msisdn=A, source="hotline", tenant_id="operator")
        record_opt_out(session, msisdn=A, source="api", tenant_id=None, category="notification")
    assert not facts(tenants, [A], tenant="shop")[A]["opted_out"]
    assert facts(tenants, [A], tenant="shop", category="notification")[A]["opted_out"]


def test_bulk_load_crosses_chunk_boundaries(tenants: Store) -> None:
    numbers = [f"+86137{i:08d}" for i in range(1_203)]
    with transaction(tenants.sessions) as session:
        for number in numbers[::100]:
            add_to_blacklist(session, msisdn=number, added_by="import", tenant_id="shop")
    found = facts(tenants, numbers, tenant="shop")
    assert len(found) == len(numbers)
    assert [n for n in numbers if found[n]["blacklisted"]] == numbers[::100]


@pytest.mark.parametrize(("minutes", "applies"), [(-1, False), (0, True), (1, True)])
def test_a_blacklist_entry_holds_from_its_at(tenants: Store, minutes: int, applies: bool) -> None:
    # Given an entry dated at noon
    noon = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    with transaction(tenants.sessions) as session:
        add_to_blacklist(session, msisdn=A, added_by="ops", at=noon)
    # When policy looks a minute before, at, or a minute after it
    seen = facts(tenants, [A], tenant="shop", now=noon + timedelta(minutes=minutes))
    # Then it applies from its instant on, not before
    assert seen[A]["blacklisted"] is applies


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
    assert facts(tenants, [A], tenant="shop")[A]["blacklisted"]
    assert not facts(tenants, [A], tenant="operator")[A]["blacklisted"]


def test_consent_for_an_unknown_tenant_is_refused_naming_the_known_ones(tenants: Store) -> None:
    with pytest.raises(InputError, match="consent.tenant: unknown tenant 'ghost' .known: operator, shop"):
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

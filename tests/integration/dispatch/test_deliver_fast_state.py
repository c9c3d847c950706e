"""The single-message path's one-statement state load against the general one, and the
delivery entry's single-message writes, on SQLite and PostgreSQL.

``load_one`` (one UNION ALL) must give policy the same facts as ``load_states`` (the ORM
load the batch property tests hold against the batch form), for every tenant, category
and key, and the same decision; a few rows written as mappings must be stored as the same
rows written as an Arrow table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.data.store import open_store
from jingxin.data.store.contact import (
    add_to_blacklist,
    record_consent,
    record_opt_out,
    update_subscriber_state,
)
from jingxin.data.store.ledger import record_contact_table, record_contacts
from jingxin.data.store.models import LedgerEntry, Message
from jingxin.data.store.policy_state import load_config, load_one, load_states
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant
from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_one
from jingxin.dispatch.outbox_rows import insert_table
from jingxin.domain.candidate import Candidate
from jingxin.policy.decide import decide
from jingxin.policy.localtime import to_us
from jingxin.policy.state import state_view

NOW = datetime(2030, 6, 5, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
NUMBERS = [f"+86138000001{i:02d}" for i in range(9)]
TENANTS = ("operator", "shop", "bank")


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    with opened.transaction() as s:
        ensure_default_tenant(s)
        for tenant in TENANTS[1:]:
            create_tenant(s, tenant_id=tenant, name=tenant, signature=f"【{tenant}】",
                          settings={"policy": {"caps": {"notification": {"day": 1}}}})  # fmt: skip
        _seed(s)
    yield opened
    opened.dispose()


def _seed(s) -> None:
    n = NUMBERS
    for tenant, given in (("shop", NOW - timedelta(days=3)), ("bank", NOW + timedelta(days=1))):
        record_consent(s, tenant_id=tenant, msisdn=n[0], category="marketing", channel="web",
                       wording="同意", given_at=given)  # fmt: skip
    record_opt_out(s, msisdn=n[1], source="sms_reply", at=NOW - timedelta(hours=1))
    record_opt_out(s, msisdn=n[2], source="api", tenant_id="shop", category="notification",
                   at=NOW - timedelta(hours=1))  # fmt: skip
    record_opt_out(s, msisdn=n[2], source="api", tenant_id="bank", at=NOW + timedelta(hours=1))
    add_to_blacklist(s, msisdn=n[3], added_by="test", tenant_id="shop")
    add_to_blacklist(s, msisdn=n[4], added_by="test")
    update_subscriber_state(s, msisdn=n[5], roaming_country="US",
                            last_complaint_at=NOW - timedelta(days=10))  # fmt: skip
    update_subscriber_state(s, msisdn=n[6], complaint_sensitive=True, timezone="Asia/Urumqi",
                            invalid_since=NOW - timedelta(days=1))  # fmt: skip
    ledger = [(n[7], "shop", "marketing", 0, "l1"), (n[7], "bank", "marketing", 0, "l2"),
              (n[7], "shop", "marketing", 1, "l3"), (n[7], "shop", "notification", 40, "old"),
              (n[8], "operator", "notification", 2, "l4")]  # fmt: skip
    record_contacts(s, entries=[
        {"tenant_id": tenant, "msisdn": number, "category": category, "idempotency_key": key,
         "local_date": NOW.date() - timedelta(days=ago), "campaign_id": 9,
         "contact_at": NOW - timedelta(days=ago)}
        for number, tenant, category, ago, key in ledger])  # fmt: skip


def test_one_statement_gives_policy_what_the_general_load_gives(store) -> None:
    # Given numbers with consents, opt-outs, blacklist entries, network state and contacts
    # of several tenants, some recorded after now
    with store.transaction() as s:
        config = load_config(s)
        keys = ["l1", "old", "fresh"]
        general = load_states(s, msisdns=NUMBERS + ["+8613800000999"], now=NOW, keys=keys)
    now_us = to_us(NOW)
    checked = 0
    for msisdn, full in general.items():
        for tenant in TENANTS:
            for category in ("otp", "notification", "marketing"):
                for key in keys:
                    # When one number's state is loaded for one tenant in one statement
                    with store.engine.begin() as conn:
                        lean, first = load_one(conn, msisdn=msisdn, tenant_id=tenant, key=key,
                                               now=NOW)  # fmt: skip
                    candidate = Candidate(msisdn, tenant, category, "api", key)
                    # Then policy sees the same facts, the same contacts, and decides alike
                    assert first is None
                    assert state_view(candidate, lean, now_us) == state_view(candidate, full,
                                                                              now_us)
                    assert sorted(lean.contacts, key=repr) == sorted(full.contacts, key=repr)
                    assert decide(candidate, lean, NOW, config) == decide(candidate, full,
                                                                          NOW, config)
                    checked += 1
    assert checked == 10 * 3 * 3 * 3


def test_a_message_already_queued_under_the_key_is_found(store) -> None:
    # Given one message delivered through the entry
    context = DeliveryContext()
    got = deliver_one(store, delivery=Delivery(msisdn="13800000101", source="api",
                                               idempotency_key="api:x", text="您好"),
                      context=context, now=NOW)  # fmt: skip
    assert got.outcome == "queued"
    # When the state is loaded for its key, Then the first message's id comes with it
    with store.engine.begin() as conn:
        state, first = load_one(conn, msisdn="+8613800000101", tenant_id="operator",
                                key="api:x", now=NOW)  # fmt: skip
    assert first == got.message_id
    assert state.used_keys == frozenset({"api:x"})
    # And delivering it again is a duplicate naming it, with nothing more written
    again = deliver_one(store, delivery=Delivery(msisdn="+8613800000101", source="api",
                                                 idempotency_key="api:x", text="您好"),
                        context=context, now=NOW)  # fmt: skip
    assert (again.outcome, again.message_id) == ("duplicate", got.message_id)
    with store.sessions() as s:
        assert s.scalar(select(LedgerEntry.id).where(LedgerEntry.idempotency_key == "api:x"))
        assert len(s.scalars(select(Message.id)).all()) == 1


def test_a_few_rows_as_mappings_are_stored_as_the_same_rows_as_a_table(store) -> None:
    later = NOW + timedelta(hours=2)
    rows = [{"tenant_id": "shop", "msisdn": "+8613900000001", "category": "marketing",
             "text": "引号\"，逗号,", "idempotency_key": f"k{i}", "parts": 2,
             "scheduled_at": later, "expires_at": later + timedelta(hours=1),
             "campaign_id": 7, "source": "campaign", "source_id": "7", "sender": "10658",
             "arm": "B"} for i in range(2)]  # fmt: skip
    table = pa.Table.from_pylist([{**r, "idempotency_key": f"t{i}"} for i, r in enumerate(rows)])
    table = table.set_column(table.schema.get_field_index("scheduled_at"), "scheduled_at",
                             table.column("scheduled_at").cast(pa.timestamp("us", "UTC")))
    table = table.set_column(table.schema.get_field_index("expires_at"), "expires_at",
                             table.column("expires_at").cast(pa.timestamp("us", "UTC")))
    # When the same rows go in as mappings and as a table, twice each
    with store.engine.begin() as conn:
        ids = insert_table(conn, table=rows, now=NOW)
        assert insert_table(conn, table=rows, now=NOW) == []  # keys already there
        assert len(insert_table(conn, table=table, now=NOW)) == 2
    # Then both are stored alike, and the mappings' new ids were returned
    columns = [c for c in Message.__table__.columns if c.key not in ("id", "idempotency_key")]
    with store.sessions() as s:
        stored = {k: tuple(r) for k, *r in s.execute(select(Message.idempotency_key, *columns))}
        assert sorted(ids) == sorted(s.scalars(select(Message.id).where(
            Message.idempotency_key.in_(["k0", "k1"])))) and len(ids) == 2  # fmt: skip
    assert stored["k0"] == stored["t0"] and stored["k1"] == stored["t1"]


def test_ledger_rows_as_mappings_are_counted_once(store) -> None:
    row = {"tenant_id": "shop", "msisdn": "+8613900000001", "category": "marketing",
           "idempotency_key": "m1", "local_date": date(2030, 6, 5), "campaign_id": 3,
           "contact_at": NOW}  # fmt: skip
    # When one ledger row goes in as a mapping twice, on a connection
    with store.engine.begin() as conn:
        assert record_contact_table(conn, table=[row]) == 1
        assert record_contact_table(conn, table=[row]) == 0
    # Then it is one row, as a table would have written it
    with store.sessions() as s:
        got = s.execute(select(LedgerEntry.local_date, LedgerEntry.campaign_id,
                               LedgerEntry.contact_at).where(
            LedgerEntry.idempotency_key == "m1")).all()  # fmt: skip
    assert [tuple(r) for r in got] == [(date(2030, 6, 5), 3, NOW)]

"""``deliver_many`` is ``deliver_one`` called on each delivery in order, in one transaction.

A random small batch (a few numbers, some blacklisted or opted out, a tight daily cap so
later deliveries meet the caps earlier ones filled, repeated keys, keys queued before the
batch, deferred wanted times) goes once through ``deliver_many`` and once through
``deliver_one`` per delivery, each on its own copy of the same SQLite store: the answers
and the rows written (outbox, ledger, decisions) must be the same, message ids aside.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from jingxin.data.store import open_store
from jingxin.data.store.contact import add_to_blacklist, record_opt_out
from jingxin.data.store.models import DecisionRecord, LedgerEntry, Message
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant
from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_many, deliver_one

NOW = datetime(2030, 6, 5, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
NUMBERS = [f"+8613800000{i:03d}" for i in range(5)]  # 3: blacklisted; 4: opted out
TENANTS = ("operator", "shop")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated store file with two tenants (shop: one notification a day) and state."""
    path = tmp_path_factory.mktemp("many") / "template.db"
    store = open_store(f"sqlite:///{path}", upgrade=True)
    with store.transaction() as s:
        ensure_default_tenant(s)
        create_tenant(s, tenant_id="shop", name="shop", signature="【店】",
                      settings={"policy": {"caps": {"notification": {"day": 1}}}})  # fmt: skip
        add_to_blacklist(s, msisdn=NUMBERS[3], added_by="test", at=NOW - timedelta(days=1))
        record_opt_out(s, msisdn=NUMBERS[4], source="api", at=NOW - timedelta(hours=1))
    deliver_one(store, delivery=_delivery(0, 0, 0, "operator", None), now=NOW)  # key k0 taken
    store.dispose()
    return path


def _delivery(key: int, number: int, text: int, tenant: str, later: int | None) -> Delivery:
    wanted = None if later is None else NOW + timedelta(hours=later)
    return Delivery(msisdn=NUMBERS[number], source="api", idempotency_key=f"k{key}",
                    tenant_id=tenant, text=f"您的验证通知 {text}", wanted_at=wanted,
                    source_id=f"s{key}")  # fmt: skip


deliveries = st.lists(
    st.builds(_delivery, st.integers(0, 6), st.integers(0, 4), st.integers(0, 2),
              st.sampled_from(TENANTS), st.sampled_from([None, None, 10, 30])),  # fmt: skip
    min_size=1, max_size=12,
)


def _copy(template: Path, name: str):
    path = template.with_name(name)
    shutil.copyfile(template, path)
    return open_store(f"sqlite:///{path}")


def _rows(store, ids: dict[int, str]) -> dict[str, list]:
    """What the store holds, message ids replaced by their keys (ids differ per store)."""
    with store.sessions() as s:
        messages = sorted((m.idempotency_key, m.msisdn, m.text, m.scheduled_at, m.tenant_id,
                           m.source_id) for m in s.scalars(select(Message)))  # fmt: skip
        ledger = sorted((e.idempotency_key, e.msisdn, e.local_date, e.tenant_id)
                        for e in s.scalars(select(LedgerEntry)))  # fmt: skip
        decisions = [(d.idempotency_key, d.outcome, d.reasons, d.send_at, _named(d.detail, ids))
                     for d in s.scalars(select(DecisionRecord).order_by(DecisionRecord.id))]  # fmt: skip
    return {"messages": messages, "ledger": ledger, "decisions": decisions}


def _named(detail: dict | None, ids: dict[int, str]) -> dict:
    detail = dict(detail or {})
    if "message_id" in detail:
        detail["message_id"] = ids[detail["message_id"]]
    return detail


def _key_of(store) -> dict[int, str]:
    with store.sessions() as s:
        return dict(s.execute(select(Message.id, Message.idempotency_key)).all())


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=deliveries)
def test_many_answers_and_writes_what_one_by_one_does(template, batch) -> None:
    # Given two copies of the same store
    one, many = _copy(template, "one.db"), _copy(template, "many.db")
    try:
        context = DeliveryContext()
        # When the batch goes one by one through deliver_one, and at once through deliver_many
        singly = [deliver_one(one, delivery=d, context=context, now=NOW) for d in batch]
        together = deliver_many(many, deliveries=batch, context=DeliveryContext(), now=NOW)
        # Then every delivery has the same answer (its message named by its key)
        keys_one, keys_many = _key_of(one), _key_of(many)
        assert [(d.outcome, keys_many.get(d.message_id), d.send_at, d.reasons)
                for d in together] == [(d.outcome, keys_one.get(d.message_id), d.send_at,
                                        d.reasons) for d in singly]  # fmt: skip
        # And the outbox, the ledger and the decisions hold the same rows
        assert _rows(many, keys_many) == _rows(one, keys_one)
    finally:
        one.dispose()
        many.dispose()


def test_a_bad_delivery_in_the_batch_writes_nothing(template) -> None:
    from jingxin.errors import InputError

    store = _copy(template, "bad.db")
    try:
        # Given a batch whose third delivery has a number that is not one
        batch = [_delivery(1, 0, 0, "operator", None), _delivery(2, 1, 0, "shop", None),
                 Delivery(msisdn="12345", source="api", idempotency_key="bad",
                          text="x")]  # fmt: skip
        before = _rows(store, _key_of(store))
        # When it is delivered, Then the error names that delivery and nothing is written
        with pytest.raises(InputError, match=r"delivery #3 \(bad\): msisdn"):
            deliver_many(store, deliveries=batch, now=NOW)
        assert _rows(store, _key_of(store)) == before
        assert deliver_many(store, deliveries=[], now=NOW) == []
    finally:
        store.dispose()

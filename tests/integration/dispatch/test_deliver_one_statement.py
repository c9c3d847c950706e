"""The delivery entry's writes on SQLite and PostgreSQL: on PostgreSQL the outbox row, its
ledger row and its decision row are ONE statement (data-modifying ``WITH``); both
dialects must store the same rows, write nothing more for a key a concurrent twin took,
and ``deliver_many`` must answer each delivery as ``deliver_one`` would."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from jingxin.data.store import open_store
from jingxin.data.store import policy_state
from jingxin.data.store.contact import add_to_blacklist
from jingxin.data.store.models import DecisionRecord, LedgerEntry, Message
from jingxin.data.store.tenants import ensure_default_tenant
from jingxin.dispatch.deliver import Delivery, deliver_many, deliver_one

NOW = datetime(2030, 6, 5, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
BLACK = "+8613800000999"


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    with opened.transaction() as s:
        ensure_default_tenant(s)
        add_to_blacklist(s, msisdn=BLACK, added_by="test", at=NOW - timedelta(days=1))
    yield opened
    opened.dispose()


def _counts(store) -> tuple[int, int, int]:
    with store.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t))
                     for t in (Message, LedgerEntry, DecisionRecord))  # fmt: skip


def _reply(key: str, msisdn: str = "13800000001") -> Delivery:
    return Delivery(msisdn=msisdn, source="api", idempotency_key=key, text="您的账单已出",
                    source_id="s1", sender="10690001")  # fmt: skip


def test_one_delivery_writes_its_three_rows_together(store) -> None:
    # When one message is delivered
    done = deliver_one(store, delivery=_reply("one:1"), now=NOW)
    # Then its outbox row, its ledger row and its decision row (naming the message) are there
    assert done.outcome == "queued" and done.message_id is not None
    with store.sessions() as s:
        message = s.scalars(select(Message)).one()
        contact = s.scalars(select(LedgerEntry)).one()
        decision = s.scalars(select(DecisionRecord)).one()
    assert (message.id, message.msisdn, message.sender, message.source_id, message.scheduled_at) \
        == (done.message_id, "+8613800000001", "10690001", "s1", NOW)
    assert (contact.idempotency_key, contact.local_date, contact.contact_at) == ("one:1",
                                                                                NOW.date(), NOW)
    assert (decision.outcome, decision.detail) == ("send", {"source_id": "s1",
                                                            "message_id": done.message_id})
    # And the same key again is a duplicate naming the first message, writing nothing
    again = deliver_one(store, delivery=_reply("one:1"), now=NOW)
    assert (again.outcome, again.message_id) == ("duplicate", done.message_id)
    assert _counts(store) == (1, 1, 1)


def test_a_rejection_writes_only_its_decision(store) -> None:
    done = deliver_one(store, delivery=_reply("one:2", BLACK), now=NOW)
    assert (done.outcome, done.message_id) == ("rejected", None)
    assert "blacklisted" in done.reasons[0]
    assert _counts(store) == (0, 0, 1)


def test_a_twin_that_took_the_key_meanwhile_leaves_nothing_half_written(store, monkeypatch):
    # Given a message queued under a key, and a state read that did not see it yet (a
    # concurrent twin committed between our read and our write)
    first = deliver_one(store, delivery=_reply("twin:1"), now=NOW)
    real = policy_state.load_one

    def blind(*args, **kwargs):
        state, _ = real(*args, **kwargs)
        return replace(state, used_keys=frozenset()), None

    monkeypatch.setattr(policy_state, "load_one", blind)
    # When the same key is delivered again
    again = deliver_one(store, delivery=_reply("twin:1"), now=NOW)
    # Then it is a duplicate of the first, and no second ledger or decision row is written
    assert (again.outcome, again.message_id) == ("duplicate", first.message_id)
    assert _counts(store) == (1, 1, 1)


def test_many_answers_each_delivery_as_one_would(store) -> None:
    # Given a key already queued
    first = deliver_one(store, delivery=_reply("many:0", "13800000002"), now=NOW)
    # When a batch with it, two new ones, a repeat of one of those and a blacklisted
    # number is delivered at once
    batch = [_reply("many:0", "13800000002"), _reply("many:1", "13800000003"),
             _reply("many:2", "13800000004"), _reply("many:1", "13800000003"),
             _reply("many:3", BLACK)]  # fmt: skip
    done = deliver_many(store, deliveries=batch, now=NOW)
    # Then each answer is what deliver_one would have said
    assert [d.outcome for d in done] == ["duplicate", "queued", "queued", "duplicate",
                                         "rejected"]  # fmt: skip
    assert done[0].message_id == first.message_id
    assert done[3].message_id == done[1].message_id
    # And the new messages have their ledger and decision rows, the rejection its decision
    assert _counts(store) == (3, 3, 4)
    with store.sessions() as s:
        named = dict(s.execute(select(DecisionRecord.idempotency_key, DecisionRecord.detail)
                               .where(DecisionRecord.outcome == "send")).all())  # fmt: skip
    assert named["many:2"]["message_id"] == done[2].message_id

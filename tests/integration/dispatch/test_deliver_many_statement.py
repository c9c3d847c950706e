"""``deliver_many``'s writes on both dialects: on PostgreSQL the batch's outbox, ledger and
decision rows are ONE fixed-text statement (arrays, data-modifying ``WITH``); a key a
concurrent twin took between the read and the write must leave nothing half-written, and
a rejection's decision must not be given another delivery's message id."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from jingxin.data.store import open_store, policy_state
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


def _reply(key: str, msisdn: str) -> Delivery:
    return Delivery(msisdn=msisdn, source="inbox", idempotency_key=key, text="已退订",
                    source_id=key, sender="10690001")  # fmt: skip


def test_a_twin_that_took_a_key_meanwhile_leaves_nothing_half_written(store, monkeypatch):
    # Given a reply queued under a key, and a state read that does not see it (a twin
    # committed between the batch's read and its write)
    first = deliver_one(store, delivery=_reply("r:1", "13800000001"), now=NOW)
    real = policy_state.load_many

    def blind(*args, **kwargs):
        states, _ = real(*args, **kwargs)
        return {n: replace(st, used_keys=frozenset()) for n, st in states.items()}, {}

    monkeypatch.setattr(policy_state, "load_many", blind)
    # When a batch with that key and a new one is delivered
    done = deliver_many(store, deliveries=[_reply("r:1", "13800000001"),
                                           _reply("r:2", "13800000002")], now=NOW)  # fmt: skip
    # Then the first is a duplicate of the twin's message, the second queued with its rows
    assert [(d.outcome, d.message_id == first.message_id) for d in done] == [
        ("duplicate", True), ("queued", False)]
    assert _counts(store) == (2, 2, 2)


def test_a_rejection_keeps_its_own_detail_when_its_key_is_queued_later(store) -> None:
    # When a batch first rejects a key (blacklisted number), then queues the same key
    done = deliver_many(store, deliveries=[_reply("r:9", BLACK), _reply("r:9", "13800000003"),
                                           _reply("r:8", "13800000004")], now=NOW)  # fmt: skip
    # Then the rejection's decision names no message, the sends name their own
    assert [d.outcome for d in done] == ["rejected", "queued", "queued"]
    with store.sessions() as s:
        rows = s.execute(select(DecisionRecord.idempotency_key, DecisionRecord.outcome,
                                DecisionRecord.detail).order_by(DecisionRecord.id)).all()  # fmt: skip
    assert [(k, o, d) for k, o, d in rows] == [
        ("r:9", "reject", {"source_id": "r:9"}),
        ("r:9", "send", {"source_id": "r:9", "message_id": done[1].message_id}),
        ("r:8", "send", {"source_id": "r:8", "message_id": done[2].message_id}),
    ]
    assert _counts(store) == (2, 2, 3)
